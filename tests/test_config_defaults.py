"""Timeouts and retries: one set of defaults, the standard configuration honoured, and a
dead endpoint (a socket on 127.0.0.1 that accepts connections and never answers) that
makes the command fail within seconds, not minutes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoResource
from s3repo_core import Digest, S3Repository, UnavailableError, make_client, set_client
from s3repo_core._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY_MODE,
    LONG_READ_TIMEOUT,
    ClientSettings,
    client_for,
    long_client,
    worst_case_seconds,
)
from s3repo_core.cli import _client, _parser, main

DIGEST = str(Digest.of(b"anything"))
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class DeadEndpoint:
    """A socket on 127.0.0.1 that accepts every connection and never answers a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def connections(self) -> int:
        """How many connections were accepted so far (one per attempt)."""
        time.sleep(0.2)  # let the accept loop take any still in the backlog
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)  # kept open, never read, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def dead() -> Iterator[DeadEndpoint]:
    endpoint = DeadEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def standard_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS_* settings but test credentials, and an empty ~/.aws/config; its path."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "aws-config"
    config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config


def settings_of(client: Any) -> tuple[Any, ...]:
    config = client.meta.config
    return (
        config.connect_timeout,
        config.read_timeout,
        config.retries["mode"],
        config.retries["total_max_attempts"],
    )


DEFAULTS = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRY_MODE, DEFAULT_MAX_ATTEMPTS)


# -- one set of defaults ---------------------------------------------------------------


def test_the_defaults_give_up_on_a_dead_endpoint_within_about_a_minute() -> None:
    defaults = ClientSettings()
    assert (defaults.connect_timeout, defaults.read_timeout) == (5.0, 15.0)
    assert defaults.max_attempts == 3
    # 3 * (5 + 15) s of timeouts + at most 1 + 2 s of backoff.
    assert worst_case_seconds(defaults) == 63.0
    assert LONG_READ_TIMEOUT >= 600  # copies of large objects keep the time they need


def test_the_command_the_resource_and_the_default_client_share_one_set_of_defaults(
    standard_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = S3RepoResource.model_fields
    assert fields["connect_timeout"].default == DEFAULT_CONNECT_TIMEOUT
    assert fields["read_timeout"].default == DEFAULT_READ_TIMEOUT
    # Unset: the standard configuration decides, then s3repo's default.
    assert fields["max_attempts"].default is None
    assert fields["retry_mode"].default is None

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    resource = S3RepoResource(
        bucket="some-bucket", endpoint_url=f"http://{uuid.uuid4().hex}.invalid"
    )
    command = _client(_parser().parse_args(["stat", DIGEST]))
    set_client(None)
    try:
        default = client_for("a-bucket-with-no-client")
    finally:
        set_client(None)
    for client in (resource.client(), command, default, make_client()):
        assert settings_of(client) == DEFAULTS


def test_the_standard_configuration_comes_before_the_defaults_and_after_arguments(
    standard_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard_env.write_text("[default]\nmax_attempts = 7\nretry_mode = adaptive\n")
    assert settings_of(make_client())[2:] == ("adaptive", 7)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    assert settings_of(make_client())[2:] == ("legacy", 2)
    resource = S3RepoResource(bucket="b", max_attempts=4, retry_mode="standard", read_timeout=3)
    assert settings_of(resource.client()) == (DEFAULT_CONNECT_TIMEOUT, 3.0, "standard", 4)
    command = _client(_parser().parse_args(["--retries", "0", "--timeout", "2", "stat", DIGEST]))
    assert settings_of(command) == (2.0, 2.0, "legacy", 1)


def test_a_profile_s_settings_are_read_from_its_section(
    standard_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard_env.write_text("[default]\nmax_attempts = 7\n[profile ci]\nmax_attempts = 5\n")
    assert settings_of(make_client(profile="ci"))[3] == 5
    monkeypatch.setenv("AWS_PROFILE", "ci")
    assert settings_of(make_client())[3] == 5


# -- long server-side operations ---------------------------------------------------------


def test_long_operations_get_a_companion_with_a_long_read_timeout(moto_server: LocalS3) -> None:
    client = make_client(
        endpoint_url=moto_server.endpoint_url,
        region=moto_server.region,
        access_key_id=moto_server.access_key,
        secret_access_key=moto_server.secret_key,
        max_attempts=2,
        read_timeout=4,
    )
    long = long_client(client)
    assert long is not client and long_client(client) is long
    assert settings_of(long) == (DEFAULT_CONNECT_TIMEOUT, LONG_READ_TIMEOUT, "standard", 2)
    assert long.meta.endpoint_url == client.meta.endpoint_url
    assert long.meta.region_name == client.meta.region_name
    assert long._request_signer._credentials is client._request_signer._credentials
    bucket = moto_server.create_bucket()
    long.put_object(Bucket=bucket, Key="k", Body=b"x")  # it works, prepared for s3repo
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    # A client someone else built keeps its own settings.
    theirs = moto_server.client()
    assert long_client(theirs) is theirs


# -- a dead endpoint ----------------------------------------------------------------------


def stat_through(dead: DeadEndpoint, *flags: str) -> int:
    return main(["--repo", "s3r://dead-endpoint-bucket/p", *flags, "stat", DIGEST])


@pytest.mark.timeout(60)
def test_timeout_and_retries_make_the_command_fail_fast_saying_what_it_retries(
    dead: DeadEndpoint,
    standard_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")  # the flag wins
    started = time.monotonic()
    assert stat_through(dead, "--timeout", "1", "--retries", "1") == 1
    assert time.monotonic() - started < 10
    assert dead.connections == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith("s3repo: retrying HeadObject (attempt 2 of 2) after ")
    assert "timeout" in err[0].lower()
    assert err[1].startswith("s3repo: error: s3://dead-endpoint-bucket/p/objects/")
    assert "timed out reading from the S3 endpoint" in err[1]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("env", "profile", "attempts"),
    [
        ({}, "", DEFAULT_MAX_ATTEMPTS),
        ({"AWS_MAX_ATTEMPTS": "2"}, "", 2),
        ({}, "[default]\nmax_attempts = 1\n", 1),
        ({"AWS_MAX_ATTEMPTS": "2"}, "[default]\nmax_attempts = 1\n", 2),
    ],
)
def test_without_flags_the_standard_configuration_sets_the_attempts(
    dead: DeadEndpoint,
    standard_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    profile: str,
    attempts: int,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    standard_env.write_text(profile)
    assert stat_through(dead, "--timeout", "1") == 1
    assert dead.connections == attempts
    assert capsys.readouterr().err.count("s3repo: retrying HeadObject") == attempts - 1


@pytest.mark.timeout(60)
def test_the_library_raises_unavailable_for_a_dead_endpoint(dead: DeadEndpoint) -> None:
    client = make_client(
        endpoint_url=dead.url,
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        max_attempts=1,
        connect_timeout=1,
        read_timeout=1,
    )
    with pytest.raises(UnavailableError, match="timed out"):
        S3Repository("dead-endpoint-bucket", "p", client=client).stat(DIGEST)
    assert dead.connections == 1


@pytest.mark.timeout(60)
def test_the_command_as_a_process_fails_fast_on_a_dead_endpoint(
    dead: DeadEndpoint, standard_env: Path
) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=dead.url)
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "s3repo_core.cli"),
            *("--repo", "s3r://dead-endpoint-bucket/p", "stat", DIGEST),
            *("--timeout", "1", "--retries", "0"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("s3repo: error: ")
    assert "timed out reading from the S3 endpoint" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--timeout", "0"], "not a positive number of seconds"),
        (["--timeout", "soon"], "not a positive number of seconds"),
        (["--retries", "-1"], "not a whole number"),
    ],
)
def test_bad_timeout_or_retries_are_usage_errors(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", "s3r://some-bucket/p", *flags, "stat", DIGEST]) == 2
    assert complaint in capsys.readouterr().err
