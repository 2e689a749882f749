"""The code location loads as every Dagster CLI finds it: workspace.yaml, and the dg
project of pyproject.toml (``dg check defs``, ``dg list defs``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster
import yaml

import repo_pipelines

ROOT = Path(__file__).resolve().parent.parent


def test_workspace_loads_repo_pipelines() -> None:
    workspace = yaml.safe_load((Path(__file__).parent.parent / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"python_module": "repo_pipelines"}]
    assert isinstance(repo_pipelines.defs, dagster.Definitions)


def test_the_core_library_never_imports_dagster() -> None:
    core = Path(__file__).parent.parent / "s3repo_core"
    for source in core.glob("*.py"):
        for line in source.read_text().splitlines():
            assert not line.lstrip().startswith(("import dagster", "from dagster")), source.name


def dg(*args: str) -> subprocess.CompletedProcess[str]:
    """``dg ARGS`` from the project root, in this interpreter's environment as activated."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, VIRTUAL_ENV=str(bin_dir.parent), DAGSTER_DISABLE_TELEMETRY="1")
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env.pop("S3REPO_BUCKET", None)  # loading definitions needs no repository
    return subprocess.run(
        [str(bin_dir / "dg"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def test_dg_check_defs_validates_the_project() -> None:
    result = dg("check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_lists_the_jobs_and_the_repository_asset() -> None:
    result = dg("list", "defs", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(result.stdout)
    assert {"collect_job", "ingest_job", "verify_job"} <= {job["name"] for job in listed["jobs"]}
    assert "s3repo/repository" in {asset["asset_key"] for asset in listed["assets"]}
