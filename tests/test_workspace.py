"""The Dagster workspace loads the code location (a placeholder until its issue)."""

from __future__ import annotations

from pathlib import Path

import dagster
import yaml

import repo_pipelines


def test_workspace_loads_repo_pipelines() -> None:
    workspace = yaml.safe_load((Path(__file__).parent.parent / "workspace.yaml").read_text())
    assert workspace["load_from"] == [{"python_module": "repo_pipelines"}]
    assert isinstance(repo_pipelines.defs, dagster.Definitions)


def test_the_core_library_never_imports_dagster() -> None:
    core = Path(__file__).parent.parent / "s3repo_core"
    for source in core.glob("*.py"):
        for line in source.read_text().splitlines():
            assert not line.lstrip().startswith(("import dagster", "from dagster")), source.name
