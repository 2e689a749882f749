"""The dev servers' clocks: moto's moves forward on request, the others' only with time.

Objects age on the server's clock (Date minus Last-Modified), so moving it must move
both: what was stored before an advance is older by that much, what is stored after it
is young.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from devkit.clocked_moto import CLOCK_PATH
from devkit.localserver import LocalS3, server_processes
from s3repo_core import NotSupportedError

ROOT = Path(__file__).resolve().parent.parent


def server_date(response: dict[str, Any]) -> datetime:
    return parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])


def age(client: Any, bucket: str, key: str) -> timedelta:
    head = client.head_object(Bucket=bucket, Key=key)
    return server_date(head) - head["LastModified"]


def test_an_advance_ages_what_is_stored_and_not_what_comes_next(moto_server: LocalS3) -> None:
    client, bucket = moto_server.client(), moto_server.create_bucket()
    client.put_object(Bucket=bucket, Key="before", Body=b"old")
    moto_server.advance_clock(3600)
    client.put_object(Bucket=bucket, Key="after", Body=b"new")
    assert moto_server.clock_offset == 3600
    assert timedelta(hours=1) <= age(client, bucket, "before") < timedelta(hours=1, seconds=5)
    assert timedelta(0) <= age(client, bucket, "after") < timedelta(seconds=5)
    listed = {
        o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
    }
    assert timedelta(minutes=59) < listed["after"] - listed["before"] < timedelta(minutes=61)
    moto_server.reset_clock()
    assert moto_server.clock_offset == 0
    now = server_date(client.list_objects_v2(Bucket=bucket))
    assert abs(now - datetime.now(now.tzinfo)) < timedelta(seconds=5)


def test_a_clock_only_moves_forward(moto_server: LocalS3) -> None:
    with pytest.raises(ValueError, match="forward"):
        moto_server.advance_clock(-1)
    request = urllib.request.Request(
        f"{moto_server.endpoint_url}{CLOCK_PATH}?advance=-1", data=b"", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert moto_server.clock_offset == 0


def test_a_server_without_a_movable_clock_waits_instead() -> None:
    server = LocalS3()
    assert not server.clock_movable
    with pytest.raises(NotSupportedError):
        server.advance_clock(1)
    started = time.monotonic()
    server.let_time_pass(0.3)
    assert time.monotonic() - started >= 0.3


@pytest.mark.timeout(60)
def test_the_standalone_server_serves_s3_and_its_clock_and_stops_on_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, value = "S3REPO_CLOCKED_MOTO_CHECK", uuid.uuid4().hex
    monkeypatch.setenv(name, value)
    marker = f"{name}={value}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.clocked_moto"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        server = LocalS3()
        server.port = int(line.rsplit(":", 1)[1])
        assert server_processes(marker) == [proc.pid]
        client = server.client()
        bucket = server.create_bucket()
        client.put_object(Bucket=bucket, Key="k", Body=b"x")
        request = urllib.request.Request(
            f"{server.endpoint_url}{CLOCK_PATH}?advance=90", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.read() == b'{"offset": 90.0}'
        assert timedelta(seconds=90) <= age(client, bucket, "k") < timedelta(seconds=95)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert server_processes(marker) == []
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
