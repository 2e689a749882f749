"""Run config that a job's steps would refuse is refused when the run is launched.

Dagster's schema cannot say "at least one" or "a digest"; each job's config mapping
(``repo_pipelines.launch_checks``) applies its ops' validators and rules while Dagster
resolves the run config, so a bad run is never created. No S3 server is needed: the
refusal comes before any step, which is the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError, Definitions, validate_run_config

from repo_pipelines import S3RepoResource, build_definitions

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def defs() -> Definitions:
    return build_definitions(S3RepoResource(bucket="my-bucket"))


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("ingest_job", {"ingest": {"config": {"paths": []}}}, "ops.ingest.config.paths: give at"),
    ("ingest_job", {}, "ops.ingest.config.paths: give at"),
    (
        "ingest_job",
        {
            "ingest": {"config": {"paths": ["/data"]}},
            "write_manifest": {"config": {"digests": ["x"]}},
        },
        "ops.write_manifest.config.digests: invalid digest 'x'",
    ),
    (
        "fetch_job",
        {"fetch": {"config": {"digest": "sha256:XYZ", "dest": "/tmp/x"}}},
        "ops.fetch.config.digest: invalid digest 'sha256:XYZ'",
    ),
    (
        "fetch_job",
        {"fetch": {"config": {"digest": DIGEST, "dest": " "}}},
        "ops.fetch.config.dest: give the local path",
    ),
    ("stat_job", {"stat": {"config": {"digests": []}}}, "ops.stat.config.digests: give at least"),
    (
        "stat_job",
        {"stat": {"config": {"digests": [DIGEST, DIGEST.upper()]}}},
        "ops.stat.config.digests: invalid digest 'SHA256:",
    ),
    (
        "manifest_job",
        {"write_manifest": {"config": {"dest": "s3://b/m/"}}},
        "ops.write_manifest.config.digests: give at least one digest",
    ),
    (
        "manifest_job",
        {"write_manifest": {"config": {"digests": [DIGEST]}}},
        "ops.write_manifest.config.dest: give where",
    ),
    (
        "collect_job",
        {"plan_collection": {"config": {"manifests": ["s3://b/m/"], "shard_width": 7}}},
        "ops.plan_collection.config.shard_width: shard_width is 0 (one step) to 4",
    ),
    (
        "verify_job",
        {"plan_verification": {"config": {"sample": 0.0}}},
        "ops.plan_verification.config.sample: sample is a fraction in (0, 1]",
    ),
]


@pytest.mark.parametrize(
    ("job", "ops", "message"), REFUSED, ids=[f"{job}-{n}" for n, (job, _, _) in enumerate(REFUSED)]
)
def test_config_a_step_would_refuse_is_refused_as_the_run_config_resolves(
    defs: Definitions, job: str, ops: dict[str, Any], message: str
) -> None:
    with pytest.raises(DagsterInvalidConfigError) as raised:
        validate_run_config(defs.get_job_def(job), {"ops": ops})
    assert f"Error in config for job {job}: " in str(raised.value)
    assert message in str(raised.value)


def test_every_refusal_is_named_at_once(defs: Definitions) -> None:
    ops = {"stat": {"config": {"digests": ["sha256:1", DIGEST, "md5:2"]}}}
    with pytest.raises(DagsterInvalidConfigError) as raised:
        validate_run_config(defs.get_job_def("stat_job"), {"ops": ops})
    # The list's validator stops at its first bad item: that one is named.
    assert "ops.stat.config.digests: invalid digest 'sha256:1'" in str(raised.value)

    ops = {
        "ingest": {"config": {"paths": []}},
        "write_manifest": {"config": {"digests": ["nope"]}},
    }
    with pytest.raises(DagsterInvalidConfigError) as raised:
        validate_run_config(defs.get_job_def("ingest_job"), {"ops": ops})
    assert "ops.write_manifest.config.digests: invalid digest 'nope'" in str(raised.value)
    assert "ops.ingest.config.paths" in str(raised.value)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("ingest_job", {"ingest": {"config": {"paths": ["/data/build-42"]}}}),
    ("fetch_job", {"fetch": {"config": {"digest": DIGEST, "dest": "/tmp/model.bin"}}}),
    ("stat_job", {"stat": {"config": {"digests": [DIGEST]}}}),
    ("manifest_job", {"write_manifest": {"config": {"digests": [DIGEST], "dest": "s3://b/m/"}}}),
    ("collect_job", {"plan_collection": {"config": {"manifests": ["s3://b/m/"]}}}),
    ("verify_job", {}),
]


@pytest.mark.parametrize(("job", "ops"), ACCEPTED, ids=[job for job, _ in ACCEPTED])
def test_good_config_and_every_other_section_pass_to_the_jobs_own_schema(
    defs: Definitions, job: str, ops: dict[str, Any]
) -> None:
    job_def = defs.get_job_def(job)
    run_config = {
        "ops": ops,
        "resources": {"repository": {"config": {"bucket": "other-bucket"}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    validated = validate_run_config(job_def, run_config)
    assert validated["resources"]["repository"]["config"]["bucket"] == "other-bucket"

    # The sections the mapping passes through are still checked by the job's schema.
    wrong = {
        **run_config,
        "resources": {"repository": {"config": {"bucket": "b", "no_such_setting": 1}}},
    }
    with pytest.raises(DagsterInvalidConfigError, match="no_such_setting"):
        validate_run_config(job_def, wrong)


def test_a_refused_run_is_never_created(defs: Definitions) -> None:
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(DagsterInvalidConfigError, match=r"ops\.ingest\.config\.paths"):
            defs.get_job_def("ingest_job").execute_in_process(
                run_config={"ops": {"ingest": {"config": {"paths": []}}}}, instance=instance
            )
        assert instance.get_runs() == []


ROOT = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).with_name("dagster")


@pytest.mark.parametrize(
    ("job", "ops", "bucket", "message"),
    [
        (
            "ingest_job",
            {"ingest": {"config": {"paths": []}}},
            "some-bucket",
            "ops.ingest.config.paths: give at least one file or directory to ingest",
        ),
        (
            "stat_job",
            {"stat": {"config": {"digests": [DIGEST]}}},
            None,
            'the environment variable "S3REPO_BUCKET" which is not set',
        ),
    ],
    ids=["bad-config", "no-bucket"],
)
def test_dagster_job_execute_refuses_before_a_run_exists(
    tmp_path: Path, job: str, ops: dict[str, Any], bucket: str | None, message: str
) -> None:
    """The README's `dagster job execute -m repo_pipelines -j JOB -c run.yaml`."""
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(json.dumps({"ops": ops}))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3REPO_")}
    if bucket is not None:
        env["S3REPO_BUCKET"] = bucket
    done = subprocess.run(
        [str(DAGSTER), "job", "execute", "-m", "repo_pipelines", "-j", job, "-c", str(run_yaml)],
        cwd=ROOT,
        env=dict(env, DAGSTER_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []
