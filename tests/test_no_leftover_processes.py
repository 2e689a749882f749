"""No command or test leaves a server process behind.

A JuiceFS gateway inherits the environment of the process that starts it, so each test
sets a marker variable of its own and looks, in /proc, for ``juicefs gateway``
processes that carry it: gateways of other processes (another test session running on
the same machine) are not counted. The session itself checks the same at its end, for
gateways and standalone ``devkit.clocked_moto`` servers (tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.localserver import juicefs_gateways, start_server

ROOT = Path(__file__).resolve().parent.parent
SERVERS = [s for s in os.environ.get("S3REPO_TEST_SERVERS", "moto,juicefs").split(",") if s]

pytestmark = pytest.mark.skipif(
    "juicefs" not in SERVERS, reason="S3REPO_TEST_SERVERS omits juicefs"
)


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``NAME=value`` set in this process's environment, so in its gateways' and children's."""
    name, value = "S3REPO_LEFTOVER_CHECK", uuid.uuid4().hex
    monkeypatch.setenv(name, value)
    mark = f"{name}={value}"
    yield mark
    for pid in juicefs_gateways(mark):  # a failed test leaves nothing behind either
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while juicefs_gateways(mark) and time.monotonic() < deadline:
        time.sleep(0.1)


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_start_server_in_a_with_block_starts_one_gateway_and_stops_it(marker: str) -> None:
    assert juicefs_gateways(marker) == []
    with start_server("juicefs") as server:
        assert juicefs_gateways(marker) == [server.pid]
    assert juicefs_gateways(marker) == []


@pytest.mark.timeout(300)
def test_the_dagster_demo_on_juicefs_leaves_no_gateway_running(marker: str) -> None:
    result = run("devkit.pipelines_demo", "--server", "juicefs")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.rstrip().endswith("stopped the S3 server")
    assert juicefs_gateways(marker) == []


@pytest.mark.timeout(120)
def test_the_tour_on_juicefs_leaves_no_gateway_running(marker: str) -> None:
    result = run("devkit.tour", "--server", "juicefs")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "server stopped" in result.stdout
    assert juicefs_gateways(marker) == []


@pytest.mark.timeout(120)
def test_a_program_that_forgets_to_stop_its_gateway_stops_it_at_exit(marker: str) -> None:
    code = "from devkit.localserver import start_server; print(start_server('juicefs').pid)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0
    assert juicefs_gateways(marker) == []
