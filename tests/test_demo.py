"""The demos run end to end and verify what they store and what they collect."""

from __future__ import annotations

import os

import pytest

from devkit.tour import DEMO_BYTES, main
from s3repo_core import Digest

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


@pytest.mark.timeout(120)
def test_the_dagster_demo_collects_exactly_the_first_build_s_garbage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from devkit.pipelines_demo import main as dagster_demo

    assert dagster_demo(["--server", "moto"]) == 0
    out = capsys.readouterr().out
    assert "| would collect | 4 |" in out
    assert "| collected | 4 |" in out
    assert "| live (named by a manifest) | 5 |" in out
    assert "stat_job       of a collected digest fails: stat failed: 1 of 1 digests" in out
    # The asset graph: the first readings and model go, the unchanged table stays.
    assert "materialize    round 2: 3 assets, 2 new objects" in out
    assert "retention      kept the last 2 materializations of each asset; collected 2" in out
    assert out.rstrip().endswith("stopped the S3 server")
