"""An endpoint that is not S3 never passes for S3, and a missing bucket is named as one.

A plain web server answers 200 (or 404, or 501) with an HTML page to every request;
without checks, puts "succeed" and stat returns the page's size.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    NotExistError,
    RepositoryError,
    S3Repository,
    UnavailableError,
    set_client,
)
from s3repo_core._client import prepare_client
from s3repo_core.liveset import ExactLiveset

PAGE = b"<html><body><h1>It works!</h1></body></html>"
DIGEST = Digest.of(b"anything")


class WebServer:
    """Answers every request with ``status`` and an HTML page, as a web server would."""

    def __init__(self, status: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(PAGE)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self) -> Any:
        return prepare_client(
            boto3.session.Session().client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{self.server.server_address[1]}",
                aws_access_key_id="key",
                aws_secret_access_key="secret",
                region_name="us-east-1",
                config=Config(retries={"mode": "standard", "max_attempts": 1}),
            )
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(params=[200, 404, 501])
def web_repo(request: pytest.FixtureRequest) -> Iterator[S3Repository]:
    server = WebServer(request.param)
    try:
        yield S3Repository(
            "bucket",
            "p",
            client=server.client(),
            refresh_window=timedelta(seconds=1),
            settle=timedelta(seconds=1),
            grace=timedelta(seconds=5),
        )
    finally:
        server.stop()


def operations(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "a").write_bytes(b"file a")
    (tmp_path / "b").write_bytes(b"file b")
    return {
        "stat": lambda repo: repo.stat(DIGEST),
        "get": lambda repo: repo.get(DIGEST).read(),
        "get_file": lambda repo: repo.get_file(DIGEST, tmp_path / "out"),
        "put": lambda repo: repo.put(b"anything"),
        "put_files": lambda repo: repo.put_files([tmp_path / "a", tmp_path / "b"]),
        "collect": lambda repo: repo.collect(ExactLiveset([])),
    }


@pytest.mark.parametrize("operation", ["stat", "get", "get_file", "put", "put_files", "collect"])
def test_a_web_server_is_not_taken_for_s3(
    web_repo: S3Repository, tmp_path: Path, operation: str
) -> None:
    run = operations(tmp_path)[operation]
    with pytest.raises(RepositoryError) as info:
        run(web_repo)
    error = info.value
    if isinstance(error, UnavailableError):
        assert "does not look like S3" in str(error)
    else:
        # A bare 501 to a HEAD is what S3 says of an option it lacks: not "missing".
        assert "501" in str(error), error
    assert not isinstance(error, NotExistError), error
    assert not (tmp_path / "out").exists()


def test_a_missing_bucket_is_named_as_a_missing_bucket(s3server: LocalS3) -> None:
    repo = S3Repository("no-such-bucket-here", "p", client=s3server.client())
    for read in (repo.stat, repo.get, lambda d: repo.get_file(d, "/tmp/never-written")):
        with pytest.raises(NotExistError, match=r"bucket .*does not exist"):
            read(DIGEST)


def test_a_copy_to_a_missing_bucket_names_the_destination(
    repo: S3Repository, s3server: LocalS3
) -> None:
    digest = repo.put(b"to be copied")
    set_client(s3server.client(), bucket="no-such-mirror")
    try:
        with pytest.raises(NotExistError) as info:
            repo.write_to(digest, "s3r://no-such-mirror/m")
    finally:
        set_client(None, bucket="no-such-mirror")
    # The source is named by its own bucket, the missing one as the destination's.
    assert f"copying s3://{repo.bucket}/" in str(info.value)
    assert "bucket 'no-such-mirror' does not exist" in str(info.value)
