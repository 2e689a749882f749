"""The demo, the README's main command, runs end to end and verifies what it stores."""

from __future__ import annotations

import os

import pytest

from s3repo_core import Digest
from s3repo_core.demo import DEMO_BYTES, main

SERVERS = [s for s in os.environ.get("S3REPO_TEST_SERVERS", "moto,juicefs").split(",") if s]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", SERVERS)
def test_the_demo_runs_and_verifies_what_it_stores(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server", server]) == 0
    out = capsys.readouterr().out
    assert f"put(bytes)               {Digest.of(DEMO_BYTES)}" in out
    assert "IntegrityError" in out  # the wrong digest was refused
    assert "s3repo demo: OK: 3 objects stored, all round-trips verified" in out
