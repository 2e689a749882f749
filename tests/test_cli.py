"""The ``s3repo`` command, run in-process with ``main(argv)`` and as a real subprocess,
against a moto S3 server on 127.0.0.1 of this module's own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from inventory_kit import listing, write_inventory

from devkit.localserver import LocalS3
from s3repo_core import Digest, S3Repository, dial, set_client, write_manifest
from s3repo_core.cli import main

from requests_log import RequestLog

DATA = b"some artifact bytes\n" * 1000
DIGEST = str(Digest.of(DATA))
ABSENT = str(Digest.of(b"never stored"))


@pytest.fixture
def server(moto_server: LocalS3) -> LocalS3:
    """The session's moto server (these tests are about our code, not the server)."""
    return moto_server


@pytest.fixture
def url(server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3r://`` URL of a repository in a fresh bucket, also set as $S3REPO_URL."""
    bucket = server.create_bucket()
    set_client(server.client(), bucket=bucket)
    monkeypatch.setenv("S3REPO_URL", f"s3r://{bucket}/cli")
    yield f"s3r://{bucket}/cli"
    set_client(None, bucket=bucket)


@pytest.fixture
def stored(url: str) -> S3Repository:
    """The repository at ``url``, holding DATA."""
    repo: S3Repository = dial(url)
    repo.put(DATA)
    return repo


def test_help_explains_every_subcommand_with_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("put", "get", "stat", "cp", "protocol", "why"):
        assert f"\n    {command} " in out
        assert f"s3repo {command} " in out
    assert "S3REPO_URL" in out
    assert "AWS_ENDPOINT_URL_S3" in out


def test_put_prints_the_digest_of_the_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "artifact.bin"
    path.write_bytes(DATA)
    assert main(["--repo", url, "put", str(path)]) == 0
    assert capsys.readouterr().out == f"{DIGEST}  {len(DATA)}  {path}\n"
    assert dial(url).stat(DIGEST).size == len(DATA)


def test_put_of_a_large_file_uploads_it_straight_to_its_key(
    server: LocalS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Past put's 64 MiB lookahead, a stream of unknown length would go to uploads/ and
    # be published with a server-side copy; a file is hashed, then uploaded to its key.
    bucket = server.create_bucket()
    client = server.client()
    set_client(client, bucket=bucket)
    try:
        data = os.urandom(1 << 20) * 65
        path = tmp_path / "large.bin"
        path.write_bytes(data)
        log = RequestLog(client)
        assert main(["--repo", f"s3r://{bucket}/cli", "put", str(path)]) == 0
        assert capsys.readouterr().out == f"{Digest.of(data)}  {len(data)}  {path}\n"
        assert log.calls["CopyObject"] == 0 and log.calls["UploadPartCopy"] == 0
        assert log.uploaded == len(data)
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert [item["Key"] for item in listed] == [f"cli/objects/{Digest.of(data)}"]
    finally:
        set_client(None, bucket=bucket)


def test_repo_comes_from_the_option_after_the_command_or_the_environment(
    url: str, stored: S3Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stat", DIGEST, "--repo", url]) == 0
    assert main(["stat", DIGEST]) == 0  # $S3REPO_URL
    assert capsys.readouterr().out == f"{DIGEST} {len(DATA)}\n" * 2


def test_stat_prints_digest_and_size(
    stored: S3Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stat", DIGEST]) == 0
    assert capsys.readouterr().out == f"{DIGEST} {len(DATA)}\n"


def test_protocol_shows_and_enables_touch_records(
    stored: S3Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["protocol"]) == 0
    assert capsys.readouterr().out == f"{stored}: touch records off (writers refresh each object)\n"
    assert main(["protocol", "--enable-touch-records"]) == 0
    assert capsys.readouterr().out == f"{stored}: touch records on\n"
    assert stored.touch_records_enabled()


def test_why_names_each_manifest_that_keeps_an_object(
    stored: S3Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = Digest.parse(DIGEST)
    write_manifest(
        tmp_path / "a.parquet", [(digest, len(DATA), "a")], kind="record", labels={"asset": "m"}
    )
    write_manifest(tmp_path / "b.parquet", [(Digest.of(b"other"), 5, "b")])
    assert main(["why", DIGEST, "--manifests", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{DIGEST}: stored, {len(DATA)} bytes; named by 1 manifests"
    assert lines[1].startswith(f"  {tmp_path / 'a.parquet'}  record  ")
    assert lines[1].endswith("asset=m")
    assert main(["why", ABSENT, "--manifests", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{ABSENT}: not stored; named by 0 manifests\n  no manifest names it")


def test_get_to_a_path(stored: S3Repository, tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    assert main(["get", DIGEST, "-o", str(dest)]) == 0
    assert dest.read_bytes() == DATA


def test_get_to_stdout(stored: S3Repository, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["get", DIGEST]) == 0
    assert capsysbinary.readouterr().out == DATA


def test_cp_copies_into_another_repository(
    stored: S3Repository, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = f"{url}-mirror"
    assert main(["cp", DIGEST, "--to", other]) == 0
    assert dial(other).stat(DIGEST).size == len(DATA)


def test_a_bad_digest_is_an_invalid_argument(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stat", "sha256:not-hex"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3repo: error: invalid digest 'sha256:not-hex'")
    assert "Traceback" not in err


def test_a_missing_repository_is_an_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("S3REPO_URL", raising=False)
    assert main(["stat", DIGEST]) == 2
    assert "s3repo: error: no repository" in capsys.readouterr().err


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["stat", "get", "cp"])
def test_a_missing_object_exits_3(
    url: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "out.bin"
    extra = {"stat": [], "get": ["-o", str(dest)], "cp": ["--to", f"{url}-mirror"]}[command]
    assert main([command, ABSENT, *extra]) == 3
    err = capsys.readouterr().err
    assert err == f"s3repo: error: {ABSENT} is not in {url}\n"
    assert not dest.exists()


def test_corrupt_bytes_exit_4(
    stored: S3Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Damage the object behind the repository's back, keeping its size.
    key = stored.layout.object_key(Digest.parse(DIGEST))
    stored.client.put_object(Bucket=stored.bucket, Key=key, Body=DATA.upper())
    dest = tmp_path / "out.bin"
    assert main(["get", DIGEST, "-o", str(dest)]) == 4
    assert "s3repo: error: " in capsys.readouterr().err
    assert not dest.exists()


def test_an_unreadable_file_exits_5_without_a_traceback(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["put", str(tmp_path / "absent.bin")]) == 5
    err = capsys.readouterr().err
    assert err.startswith("s3repo: error: ") and "absent.bin" in err
    assert "Traceback" not in err
    assert main(["put", str(tmp_path)]) == 0  # a directory, with no file in it
    assert capsys.readouterr() == ("", "")


def test_get_into_a_missing_directory_exits_5_not_3(
    stored: S3Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "no-such-dir" / "out.bin"
    assert main(["get", DIGEST, "-o", str(dest)]) == 5
    err = capsys.readouterr().err
    assert err == f"s3repo: error: {dest}: directory {str(dest.parent)!r} does not exist\n"
    assert not dest.parent.exists()
    assert main(["get", DIGEST, "-o", str(tmp_path)]) == 5  # a directory, not a file
    assert capsys.readouterr().err == f"s3repo: error: {tmp_path}: is a directory, not a file\n"
    # The object missing is still 3, even with a good destination.
    assert main(["get", ABSENT, "-o", str(tmp_path / "out.bin")]) == 3


def test_the_help_documents_every_exit_code_as_the_readme_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    helped = out[out.index("\nexit codes:\n") :].splitlines()[2:]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("| exit code |") :].split("\n\n")[0].splitlines()[2:]
    assert len(helped) == len(table) == 7
    for line, row in zip(helped, table, strict=True):
        code, text = line.split(maxsplit=1)
        _, number, meaning, _ = row.split("|", 3)
        assert int(number) == int(code)
        first_words = " ".join(text.replace(":", "").split()[:2]).strip("`")
        assert first_words in meaning.replace(":", "").replace("`", ""), (line, row)


@pytest.mark.parametrize(
    "argv",
    [
        ["--repo", "http://example.com/x", "stat", DIGEST],
        ["--repo", "gs://bucket/x", "stat", DIGEST],
        ["cp", DIGEST, "--to", "ftp://host/x"],
        ["cp", DIGEST, "--to", "s3://bucket/x"],
    ],
)
def test_an_unsupported_url_scheme_is_a_usage_error(
    url: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("s3repo: error: unsupported repository URL scheme")
    assert len(err.splitlines()) == 1


def test_cp_to_a_missing_bucket_names_that_bucket_and_the_right_source(
    server: LocalS3,
    stored: S3Repository,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in server.environ().items():  # the command's own client, on the server
        monkeypatch.setenv(name, value)
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    assert main(["cp", DIGEST, "--to", f"s3r://{missing}/mirror"]) == 3
    err = capsys.readouterr().err
    assert missing in err and "bucket" in err
    # The source is in the source's bucket, not in the missing one.
    assert f"s3://{missing}/cli/" not in err, err


def test_get_creates_the_file_as_the_umask_says(stored: S3Repository, tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    before = os.umask(0o022)
    try:
        assert main(["get", DIGEST, "-o", str(dest)]) == 0
    finally:
        os.umask(before)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_the_command_uses_boto3s_environment_and_streams_stdin(server: LocalS3) -> None:
    """A real process, configured only by environment variables, puts stdin and gets it."""
    bucket = server.create_bucket()
    env = {**os.environ, **server.environ(), "S3REPO_URL": f"s3r://{bucket}/sub"}
    command = [sys.executable, "-m", "s3repo_core.cli"]

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*command, *args], input=stdin, env=env, capture_output=True, timeout=60
        )

    put = run("put", "-", stdin=DATA)
    assert (put.returncode, put.stdout, put.stderr) == (0, f"{DIGEST}\n".encode(), b"")
    got = run("get", DIGEST)
    assert (got.returncode, got.stdout == DATA) == (0, True)
    missing = run("stat", ABSENT)
    assert missing.returncode == 3
    assert missing.stderr.startswith(b"s3repo: error: ")
    assert b"Traceback" not in missing.stderr


def test_collect_takes_its_candidates_from_an_inventory_report(
    stored: S3Repository, server: LocalS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = server.client()
    at = write_inventory(client, stored.bucket, stored.bucket, listing(client, stored.bucket))
    write_manifest(tmp_path / "none.parquet", [], kind="record")
    prefix = f"s3://{stored.bucket}/inventory/{stored.bucket}/daily/"
    args = ["--json", "collect", "--manifests", str(tmp_path), "--inventory", prefix]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plan"]["inventory"] == at
    assert (result["report"]["scanned"], result["report"]["kept_recent"]) == (1, 1)
    assert main([*args[:-1], f"s3://{stored.bucket}/inventory/none/"]) == 3
    assert "no S3 Inventory report" in capsys.readouterr().err
