"""The README's run configs are valid for the jobs they name: a reader who pastes one
into the launchpad (or a run.yaml) gets a run, not a config error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dagster import validate_run_config

from repo_pipelines import S3RepoResource, build_definitions

README = Path(__file__).resolve().parent.parent / "README.md"
#: A YAML block whose first line names a job: "# ingest_job: ..." or "# fetch_job".
BLOCK = re.compile(r"```yaml\n# (\w+_job)\b[^\n]*\n(.*?)```", re.DOTALL)
BLOCKS = BLOCK.findall(README.read_text())


def test_the_readme_has_a_run_config_for_each_job_people_launch() -> None:
    assert {job for job, _ in BLOCKS} >= {"ingest_job", "fetch_job", "collect_job", "verify_job"}


@pytest.mark.parametrize(("job", "text"), BLOCKS, ids=[job for job, _ in BLOCKS])
def test_each_readme_run_config_validates_against_its_job(job: str, text: str) -> None:
    defs = build_definitions(S3RepoResource(bucket="my-bucket"))
    validate_run_config(defs.get_job_def(job), yaml.safe_load(text))
