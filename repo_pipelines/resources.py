"""The repository as a Dagster resource: where it is, how to reach it, how to retry.

Credentials are plain fields so that they can be given as ``EnvVar``: Dagster then
shows the variable's name, never its value, in the UI and the run's config. Left
unset, boto3's standard chain applies (``AWS_*`` variables, profiles, instance roles).
The secret key and the session token are left out of the resource's ``repr``, ``str``,
``model_dump`` and validation errors, also once a run has resolved them; but a secret
given as a literal string (not an ``EnvVar``) is stored by Dagster in the job's
snapshot as the field's default, so give secrets as ``EnvVar``.

Timeouts and retries are those of ``s3repo_core``: a field left unset (None) means
boto3's standard configuration for the retries (``AWS_MAX_ATTEMPTS``,
``AWS_RETRY_MODE``, the profile), then s3repo's defaults, the same as the ``s3repo``
command's. Each process builds one boto3 client per distinct connection setting and
shares it between steps and threads (boto3 clients are thread-safe): the core's
``shared_client``. Ops hand that client to the core explicitly (the repository has it,
and manifests are read and written with it); nothing is registered process-wide.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import ConfigDict, Field, field_validator

from s3repo_core import S3Repository, StoreOptions
from s3repo_core._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY_MODE,
    RETRY_MODES,
    shared_client,
)

__all__ = ["S3RepoResource"]

MiB = 1024 * 1024


class S3RepoResource(ConfigurableResource):
    """An s3repo repository: ``s3r://<bucket>/<prefix>`` on an S3-compatible store."""

    # A validation error would otherwise quote the value given, a secret included.
    model_config = ConfigDict(hide_input_in_errors=True)

    bucket: str = Field(description="The bucket that holds the repository.")
    prefix: str = Field(default="", description="The repository's key prefix in the bucket.")
    endpoint_url: str | None = Field(
        default=None, description="The S3 endpoint; unset means AWS (or AWS_ENDPOINT_URL_S3)."
    )
    region: str | None = Field(default=None, description="The region; unset means boto3's.")
    profile: str | None = Field(default=None, description="A profile in ~/.aws/config.")
    access_key_id: str | None = Field(
        default=None, description="Give as EnvVar; unset means boto3's credential chain."
    )
    secret_access_key: str | None = Field(
        default=None, repr=False, exclude=True, description="Give as EnvVar."
    )
    session_token: str | None = Field(
        default=None, repr=False, exclude=True, description="Give as EnvVar."
    )
    max_attempts: int | None = Field(
        default=None,
        description="Attempts per S3 request, the first included; unset means "
        f"AWS_MAX_ATTEMPTS or the profile's max_attempts, else {DEFAULT_MAX_ATTEMPTS}.",
    )
    # A str, not a Literal: Dagster's config has no optional enum; checked below.
    retry_mode: str | None = Field(
        default=None,
        description=f"botocore's retry mode, one of {', '.join(RETRY_MODES)}; unset means "
        f"AWS_RETRY_MODE or the profile's retry_mode, else {DEFAULT_RETRY_MODE}.",
    )
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, description="Seconds to open a connection."
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT,
        description="Seconds to wait for each read of a response (copies and multipart "
        "completions, which the server may take minutes over, wait longer).",
    )
    part_size_mib: int = Field(default=8, description="Multipart part size in MiB (5 or more).")
    concurrency: int = Field(default=8, description="Parts or files transferred at once.")
    grace_seconds: float = Field(
        default=86_400.0,
        description="Collection never deletes what was written within this long before "
        "its threshold may be; see the s3repo guarantee.",
    )
    refresh_window_seconds: float = Field(
        default=3_600.0, description="Writers refresh stored objects older than this."
    )
    settle_seconds: float = Field(
        default=60.0, description="How long a DeleteObjects may take to apply."
    )
    sse: str | None = Field(
        default=None,
        description="Server-side encryption of every write: 'AES256' (SSE-S3) or 'aws:kms'.",
    )
    kms_key_id: str | None = Field(
        default=None, description="With sse 'aws:kms': the KMS key id, ARN or alias."
    )
    bucket_key: bool | None = Field(
        default=None, description="With sse 'aws:kms': use an S3 Bucket Key (fewer KMS calls)."
    )
    storage_class: str | None = Field(
        default=None, description="The storage class of every object, e.g. STANDARD_IA."
    )
    expected_bucket_owner: str | None = Field(
        default=None,
        description="The 12-digit account that must own the bucket; every request says so, "
        "so a mistyped bucket name cannot reach someone else's bucket.",
    )

    @field_validator("retry_mode")
    @classmethod
    def _known_retry_mode(cls, mode: str | None) -> str | None:
        if mode is not None and mode not in RETRY_MODES:
            raise ValueError(f"retry_mode must be one of {', '.join(RETRY_MODES)}")
        return mode

    @classmethod
    def from_env(cls) -> S3RepoResource:
        """The resource the code location uses, configured by ``S3REPO_*`` variables.

        ``S3REPO_BUCKET`` is read when a run starts; the optional settings are given
        as EnvVar when they are set as the code location loads.
        """
        optional: dict[str, Any] = {}
        for field, var in (
            ("prefix", "S3REPO_PREFIX"),
            ("endpoint_url", "S3REPO_ENDPOINT_URL"),
            ("region", "S3REPO_REGION"),
            ("profile", "S3REPO_PROFILE"),
            ("access_key_id", "S3REPO_ACCESS_KEY_ID"),
            ("secret_access_key", "S3REPO_SECRET_ACCESS_KEY"),
            ("session_token", "S3REPO_SESSION_TOKEN"),
        ):
            if os.environ.get(var):
                optional[field] = EnvVar(var)
        return cls(bucket=EnvVar("S3REPO_BUCKET"), **optional)

    def client(self) -> Any:
        """This process's boto3 client for these connection settings, built on first use.

        Ops read and write manifests in ``s3://`` with it (``client=``).
        """
        return shared_client(
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            session_token=self.session_token,
            max_attempts=self.max_attempts,
            retry_mode=self.retry_mode,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    def repository(self) -> S3Repository:
        """The repository, with this process's client (see :meth:`client`)."""
        return S3Repository(
            self.bucket,
            self.prefix,
            client=self.client(),
            part_size=self.part_size_mib * MiB,
            concurrency=self.concurrency,
            refresh_window=timedelta(seconds=self.refresh_window_seconds),
            grace=timedelta(seconds=self.grace_seconds),
            settle=timedelta(seconds=self.settle_seconds),
            options=StoreOptions(
                sse=self.sse,
                kms_key_id=self.kms_key_id,
                bucket_key=self.bucket_key,
                storage_class=self.storage_class,
                owner=self.expected_bucket_owner,
            ),
        )
