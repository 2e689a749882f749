"""Which boto3 client talks to which bucket.

As in the seed, a process sets one default client (or one per bucket) with
:func:`set_client`; with none set, a client is built once from boto3's standard
configuration: the credential chain, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and the shared config files. So the same code runs
against AWS and any S3-compatible store. boto3 clients are thread-safe; sessions are
not, so a client is built under a lock and then shared.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

import boto3
from botocore.config import Config

from ._errors import InvalidArgumentError
from ._translate import check_response, translated

__all__ = ["client_for", "default_config", "make_client", "prepare_client", "set_client"]

_lock = threading.Lock()
_default: Any = None
_by_bucket: dict[str, Any] = {}

#: Enough pooled connections for the transfer thread pools of a few repositories.
MAX_POOL_CONNECTIONS = 64


def default_config(**overrides: Any) -> Config:
    """The botocore Config s3repo uses: standard retries and a pool for concurrent parts."""
    settings: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 5},
        "max_pool_connections": MAX_POOL_CONNECTIONS,
    }
    settings.update(overrides)
    return Config(**settings)


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    max_attempts: int = 5,
    retry_mode: str = "standard",
    connect_timeout: float = 60,
    read_timeout: float = 60,
) -> Any:
    """A new S3 client prepared for s3repo, from explicit settings.

    What is left as None comes from boto3's standard configuration, as for the default
    client. For programs that configure the store themselves (the Dagster resource)
    rather than through the environment.
    """
    if max_attempts < 1:
        raise InvalidArgumentError("max_attempts must be at least 1")
    if retry_mode not in ("standard", "adaptive", "legacy"):
        raise InvalidArgumentError(
            f"retry_mode must be 'standard', 'adaptive' or 'legacy', got {retry_mode!r}"
        )
    config = default_config(
        retries={"mode": retry_mode, "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    with translated("building an S3 client"):
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
            profile_name=profile,
        )
        return prepare_client(session.client("s3", endpoint_url=endpoint_url, config=config))


def _add_content_md5(request: Any, **_: Any) -> None:
    """Send Content-MD5 with DeleteObjects.

    S3 once required it, and gateways built on MinIO still do (the JuiceFS gateway
    answers MissingContentMD5); recent botocore sends a CRC checksum instead.
    """
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if body and "Content-MD5" not in request.headers:
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(md5).decode()


def prepare_client(client: Any) -> Any:
    """Make a boto3 S3 client fit for s3repo (idempotent) and return it."""
    client.meta.events.register(
        "before-sign.s3.DeleteObjects", _add_content_md5, unique_id="s3repo-content-md5"
    )
    client.meta.events.register("after-call.s3", check_response, unique_id="s3repo-check-response")
    return client


def set_client(client: Any, bucket: str | None = None) -> None:
    """Use ``client`` for ``bucket``, or for every bucket without its own when None."""
    global _default
    with _lock:
        if bucket is None:
            _default = prepare_client(client) if client is not None else None
        elif client is None:
            _by_bucket.pop(bucket, None)
        else:
            _by_bucket[bucket] = prepare_client(client)


def client_for(bucket: str) -> Any:
    """The client set for ``bucket``, else the default, built on first use if unset."""
    global _default
    with _lock:
        client = _by_bucket.get(bucket)
        if client is not None:
            return client
        if _default is None:
            with translated("building the default S3 client"):
                _default = prepare_client(
                    boto3.session.Session().client("s3", config=default_config())
                )
        return _default
