"""No secret (secret access key, session token) appears in a repr, a log line, an
exception, an event record or the command's output. Each check uses a marker value and
looks for it everywhere it could show. (The Dagster instance's storage, across
processes, is checked in test_pipelines_processes.py.)"""

# No "from __future__ import annotations": Dagster reads the op's annotations at run time.
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, EnvVar, OpExecutionContext, job, op
from dagster._serdes import serialize_value
from pydantic import ValidationError
from test_config_defaults import DeadEndpoint

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoResource
from s3repo_core import Digest, RepositoryError, S3Repository, make_client

SECRET = "SECRETMARKER123"
TOKEN = "TOKENMARKER456"
MARKERS = (SECRET, TOKEN)


def assert_no_marker(*texts: Any) -> None:
    for text in texts:
        for marker in MARKERS:
            assert marker not in str(text), text


def resource(**overrides: Any) -> S3RepoResource:
    settings: dict[str, Any] = {
        "bucket": "some-bucket",
        "access_key_id": "AKIDVISIBLE",
        "secret_access_key": SECRET,
        "session_token": TOKEN,
        **overrides,
    }
    return S3RepoResource(**settings)


# -- the Dagster resource ------------------------------------------------------------------


def test_the_resource_shows_no_secret_in_repr_str_or_dump() -> None:
    given = resource()
    assert (given.secret_access_key, given.session_token) == (SECRET, TOKEN)  # still usable
    for shown in (repr(given), str(given), given.model_dump(), given.model_dump_json()):
        assert_no_marker(shown)
    assert "AKIDVISIBLE" in repr(given)  # a key id is not a secret: it helps to see it
    assert "secret_access_key" not in given.model_dump()


def test_a_validation_error_does_not_quote_a_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        resource(secret_access_key=[SECRET], session_token={"t": TOKEN}, max_attempts="x")
    assert_no_marker(str(caught.value), repr(caught.value))


def test_the_resource_resolved_from_envvar_in_a_run_shows_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SECRET_KEY", SECRET)
    monkeypatch.setenv("TEST_SESSION_TOKEN", TOKEN)
    seen: dict[str, Any] = {}

    @op
    def look(context: OpExecutionContext, repository: S3RepoResource) -> None:
        seen["values"] = (repository.secret_access_key, repository.session_token)
        seen["shown"] = [repr(repository), str(repository), repository.model_dump()]
        context.log.info(f"the resource: {repository!r}")

    @job(
        resource_defs={
            "repository": S3RepoResource(
                bucket="some-bucket",
                secret_access_key=EnvVar("TEST_SECRET_KEY"),
                session_token=EnvVar("TEST_SESSION_TOKEN"),
            )
        }
    )
    def looking() -> None:
        look()

    with DagsterInstance.ephemeral() as instance:
        result = looking.execute_in_process(instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        records = [serialize_value(e) for e in instance.all_logs(result.run_id)]
        snapshot = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
    assert seen["values"] == (SECRET, TOKEN)  # resolved in the run...
    assert_no_marker(*seen["shown"], *records, snapshot, serialize_value(run))  # ...never shown
    assert any("the resource: S3RepoResource(bucket='some-bucket'" in r for r in records)


# -- the library -------------------------------------------------------------------------------


def test_errors_and_logs_of_the_library_show_no_secret(
    moto_server: LocalS3, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="s3repo")
    with pytest.raises(RepositoryError) as bad_mode:
        make_client(secret_access_key=SECRET, session_token=TOKEN, retry_mode="sometimes")
    client = make_client(
        endpoint_url=moto_server.endpoint_url,
        region=moto_server.region,
        access_key_id=moto_server.access_key,
        secret_access_key=SECRET,
        session_token=TOKEN,
    )
    bucket = moto_server.create_bucket()
    repo = S3Repository(bucket, "secrets", client=client)
    digest = repo.put(b"bytes")
    with pytest.raises(RepositoryError) as missing:
        repo.stat(Digest.of(b"not stored"))
    with pytest.raises(RepositoryError) as no_bucket:
        S3Repository("no-such-bucket-for-secrets", client=client).put(b"x")
    assert repo.stat(digest).size == 5
    errors = [bad_mode.value, missing.value, no_bucket.value]
    assert_no_marker(*errors, *(repr(e) for e in errors), repr(repo), str(repo), caplog.text)


# -- the command -------------------------------------------------------------------------------


def run_command(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "s3repo_core.cli", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def command_env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "s3repo-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def test_the_command_shows_no_secret_whatever_happens(s3server: LocalS3, tmp_path: Path) -> None:
    """Successes, a missing object, refused credentials (the JuiceFS gateway checks the
    signature; moto does not) and retries against a dead endpoint."""
    bucket = s3server.create_bucket()
    env = command_env(s3server.endpoint_url, tmp_path)
    repo = f"s3r://{bucket}/secrets"
    outputs = [
        run_command(env, "--repo", repo, "put", "-", stdin=b"payload"),
        run_command(env, "--repo", repo, "stat", str(Digest.of(b"payload"))),
        run_command(env, "--repo", repo, "stat", str(Digest.of(b"missing"))),
        run_command(env, "--repo", repo, "get", str(Digest.of(b"missing")), "-o", "/no/dir/x"),
    ]
    if s3server.name == "juicefs":  # it knows the key's real secret: this one is wrong
        code, text = outputs[0]
        assert code == 1 and ("Forbidden" in text or "SignatureDoesNotMatch" in text), text
    else:
        assert outputs[0] == (0, f"{Digest.of(b'payload')}\n")
    dead = DeadEndpoint()
    try:
        outputs.append(
            run_command(
                command_env(dead.url, tmp_path),
                *("--repo", repo, "--timeout", "1", "--retries", "1", "stat", str(Digest.of(b"x"))),
            )
        )
    finally:
        dead.close()
    assert "retrying HeadObject (attempt 2 of 2)" in outputs[-1][1]
    assert_no_marker(*(text for _, text in outputs))
    assert_no_marker(json.dumps(outputs))
