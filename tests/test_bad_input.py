"""Bad input gets InvalidArgumentError with a clear message, from the library, from the
command (exit 2, one line, no traceback) and from the Dagster resource; never a
UnicodeEncodeError or ValueError from below."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.pipelines_demo import failure_message
from repo_pipelines import S3RepoResource, build_definitions
from s3repo_core import Digest, InvalidArgumentError, S3Repository, dial, make_client
from s3repo_core._names import Layout, check_bucket, clean_prefix
from s3repo_core.cli import main

DIGEST = str(Digest.of(b"x"))

BAD_PREFIXES = {
    "a lone surrogate": "data/\udcff",
    "a non-UTF-8 byte, as Python decodes it from argv": os.fsdecode(b"data/\xff"),
    "a C0 control character": "data/\x01x",
    "DEL": "data/\x7fx",
    "a C1 control character": "data/\x85x",
    "the bidi override U+202E": "data/\u202etxt.exe",
    "a zero-width space": "data/\u200bx",
    "the line separator U+2028": "data/\u2028x",
    "the noncharacter U+FFFF": "data/\uffff",
    "the noncharacter U+FDD0": "data/\ufdd0",
    "the noncharacter U+10FFFF": "data/\U0010ffff",
}


@pytest.mark.parametrize("prefix", BAD_PREFIXES.values(), ids=BAD_PREFIXES.keys())
def test_a_prefix_with_unusable_characters_is_an_invalid_argument(prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid prefix") as caught:
        clean_prefix(prefix)
    assert "U+" in str(caught.value)  # names the character
    with pytest.raises(InvalidArgumentError):
        S3Repository("some-bucket", prefix)


@pytest.mark.parametrize("prefix", ["\udcff", "a/\ud800b", "\u202e", "\uffff", "x\x7f"])
def test_dial_refuses_them_too(prefix: str) -> None:
    with pytest.raises(InvalidArgumentError):
        dial(f"s3r://some-bucket/{prefix}")


@pytest.mark.parametrize("prefix", ["données/été", "模型/v1", "emoji/😀", "a b/c-d_e.f", "x" * 900])
def test_ordinary_unicode_prefixes_are_fine(prefix: str) -> None:
    assert S3Repository("some-bucket", prefix).prefix == prefix


@pytest.mark.parametrize("bucket", ["my-bucket\n", "my-bucket\r\n", "\nmy-bucket", "1.2.3.4\n"])
def test_a_bucket_name_with_a_newline_is_invalid(bucket: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid bucket name"):
        check_bucket(bucket)
    with pytest.raises(InvalidArgumentError):
        S3Repository(bucket)


@pytest.mark.parametrize(
    "url",
    ["s3r://my-bucket\n/x", "s3r://my-bucket/x\n", "s3r://my-bucket/a\tb", " s3r://my-bucket/x"],
)
def test_a_url_that_urlsplit_would_silently_clean_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="malformed repository URL"):
        dial(url)


def test_an_upload_key_with_a_trailing_newline_is_not_an_upload() -> None:
    layout = Layout("p")
    key = layout.new_upload_key()
    assert layout.is_upload_key(key)
    assert not layout.is_upload_key(key + "\n")


@pytest.mark.parametrize("endpoint", ["localhost:9000", "127.0.0.1:9000", "ftp://h", "http://"])
def test_an_endpoint_url_without_a_scheme_is_an_invalid_argument(endpoint: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid S3 endpoint URL") as caught:
        make_client(endpoint_url=endpoint, region="us-east-1")
    assert "http://" in str(caught.value)  # says what is expected


def test_an_endpoint_url_with_a_password_is_refused_without_repeating_it() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        make_client(endpoint_url="http://user:PASSWORDMARKER@127.0.0.1:9000")
    assert "PASSWORDMARKER" not in str(caught.value)


# -- through the command ----------------------------------------------------------------


def run_command(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s3repo_core.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "repo",
    [b"s3r://some-bucket/data/\xff", "s3r://some-bucket/\u202eexe.txt", "s3r://some-bucket/a\x7f"],
    ids=["non-UTF-8 byte", "bidi override", "DEL"],
)
def test_the_command_reports_a_bad_repo_url_in_one_line_and_exits_2(repo: str | bytes) -> None:
    result = run_command("--repo", repo, "stat", DIGEST)
    assert result.returncode == 2, result.stderr
    err = result.stderr.decode("utf-8", "replace")
    assert err.startswith("s3repo: error: ")
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err


def test_the_command_reports_an_endpoint_without_a_scheme_and_exits_2(tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL_S3": "127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
    }
    result = run_command("--repo", "s3r://some-bucket/p", "stat", DIGEST, env=env)
    assert result.returncode == 2, result.stderr
    err = result.stderr.decode()
    assert err.startswith("s3repo: error: invalid S3 endpoint URL")
    assert "127.0.0.1:9000" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_command_in_process_says_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", "s3r://some-bucket/\udcff", "stat", DIGEST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3repo: error: invalid prefix") and "U+DCFF" in err


# -- through the Dagster resource --------------------------------------------------------


def test_the_resource_reports_an_endpoint_without_a_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S3REPO_BUCKET", "some-bucket")
    monkeypatch.setenv("S3REPO_ENDPOINT_URL", "127.0.0.1:9000")
    defs = build_definitions(S3RepoResource.from_env())
    result = defs.get_job_def("stat_job").execute_in_process(
        run_config={"ops": {"stat": {"config": {"digests": [DIGEST]}}}}, raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert "invalid S3 endpoint URL '127.0.0.1:9000'" in message, message
