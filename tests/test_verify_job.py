"""verify_job: the core's verify fanned out over shards, its report in the UI, the run
failed by a corrupt object, and quarantine repairing it through the next put."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInvalidConfigError, Definitions
from test_pipelines import failure_text, metadata, resource_for, run

from devkit.localserver import LocalS3
from repo_pipelines import S3RepoResource, build_definitions
from s3repo_core import Digest, S3Repository

BODIES = [f"object {n}\n".encode() * (n + 1) for n in range(12)]


@pytest.fixture
def resource(moto_server: LocalS3) -> S3RepoResource:
    return resource_for(moto_server, moto_server.create_bucket())


@pytest.fixture
def defs(resource: S3RepoResource) -> Definitions:
    return build_definitions(resource)


@pytest.fixture
def core(resource: S3RepoResource) -> S3Repository:
    repo = resource.repository()
    for body in BODIES:
        repo.put(body)
    return repo


def observations(result: Any) -> list[dict[str, Any]]:
    found = []
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_OBSERVATION:
            data = event.event_specific_data.asset_observation.metadata
            found.append({key: getattr(value, "value", value) for key, value in data.items()})
    return found


def test_a_clean_repository_verifies_over_16_shards(defs: Definitions, core: S3Repository) -> None:
    result = run(defs, "verify_job", {"plan_verification": {"config": {"shard_width": 1}}})
    assert result.success
    shard_steps = {
        e.step_key
        for e in result.all_events
        if e.step_key and e.step_key.startswith("verify_shard")
    }
    assert len(shard_steps) == 16
    report = result.output_for_node("report_verification")
    assert (report.checked, report.bytes_read, report.failed) == (
        len(BODIES),
        sum(map(len, BODIES)),
        False,
    )
    summary, verified = observations(result)
    assert (summary["objects"], summary["bytes"]) == (len(BODIES), sum(map(len, BODIES)))
    assert (verified["objects_verified"], verified["objects_corrupt"]) == (len(BODIES), 0)
    assert metadata(result, "report_verification")["checked"] == len(BODIES)


def test_a_corrupt_object_fails_the_run_and_quarantine_lets_a_put_repair_it(
    defs: Definitions, core: S3Repository, moto_server: LocalS3
) -> None:
    bad = Digest.of(BODIES[3])
    moto_server.client().put_object(
        Bucket=core.bucket, Key=f"{core.prefix}/objects/{bad}", Body=BODIES[4]
    )
    failed = run(defs, "verify_job", {})
    assert not failed.success
    text = failure_text(failed)
    assert "1 corrupt" in text and str(bad) in text
    assert core.stat(bad).size == len(BODIES[4])  # reported, not moved

    moved = run(defs, "verify_job", {"plan_verification": {"config": {"quarantine": True}}})
    assert not moved.success  # still a failure: the bytes must be put again
    assert "1 quarantined" in failure_text(moved)
    assert observations(moved)[-1]["objects_quarantined"] == 1
    core.put(BODIES[3])
    assert run(defs, "verify_job", {}).success


def test_a_sample_checks_fewer_objects(defs: Definitions, core: S3Repository) -> None:
    result = run(defs, "verify_job", {"plan_verification": {"config": {"sample": 0.05}}})
    assert result.success
    assert result.output_for_node("report_verification").checked < len(BODIES)


def test_bad_config_is_refused_before_any_step(defs: Definitions) -> None:
    for config, field in (
        ({"sample": 0}, "sample"),
        ({"sample": 1.5}, "sample"),
        ({"shard_width": 5}, "shard_width"),
    ):
        with pytest.raises(
            DagsterInvalidConfigError, match=rf"ops\.plan_verification\.config\.{field}: "
        ):
            run(defs, "verify_job", {"plan_verification": {"config": config}})
