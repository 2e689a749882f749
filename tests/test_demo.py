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


@pytest.mark.timeout(180)
def test_a_week_of_assets_retires_and_collects_day_by_day(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Days on moto's clock: nothing is collected while everything is young or among
    the last three; then each day the outputs retention retires go, and at the end
    the repository holds exactly what the kept records name (the demo checks it)."""
    from devkit.pipelines_demo import main as dagster_demo

    assert dagster_demo(["--week", "--days", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    days = [line for line in lines if line.startswith("day ")]
    assert len(days) == 4
    assert days[0].startswith("day 0: +6 objects") and "collected 0 " in days[0]
    assert "+2 objects" in days[1] and "4 stored already" in days[1]  # one file, one tree
    assert "retired 0" not in days[3] and "collected 0 " not in days[3]
    assert any("the repository holds exactly what kept records name" in line for line in lines)


def test_a_week_needs_moto(capsys: pytest.CaptureFixture[str]) -> None:
    from devkit.pipelines_demo import main as dagster_demo

    with pytest.raises(SystemExit):
        dagster_demo(["--week", "--server", "juicefs"])
    assert "--week needs --server moto" in capsys.readouterr().err
