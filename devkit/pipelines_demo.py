"""The code location end to end on a local S3 server: ingest, manifest, collect.

    python -m devkit.pipelines_demo [--server moto|juicefs] [--ui] [--week [--days N]]

(``python3 dev.py demo`` runs it too.)

Starts a local S3 server on 127.0.0.1 and runs the real jobs through Dagster: two
builds of files are ingested, the second with a manifest; after the grace period
the collection runs as a dry run, then for real, and deletes exactly the objects
only the first build had. A fetch and a stat show the result. Then a small asset
graph (a file, a table, and a model built from both) is materialised three times
through ``S3RepoIOManager``, with changes, and collected: retention keeps the last
two materializations of each asset, and exactly the outputs only the first named are
deleted, while bytes that did not change stay. It prints what happened, stops the
server, and exits 0 only if every check held.

The demo shortens the repository's grace period to seconds so that it can run in
under a minute; deployments keep the 24 h default. On moto the grace passes at once
(its clock is moved); the JuiceFS gateway's is waited for. With ``--ui`` the runs are kept
in ``.dagster_home/`` and ``dagster dev -w workspace.yaml`` is started against the
same server, until Ctrl-C. ``--week`` runs a week of daily materializations and
nightly collections instead, on moto (``devkit.asset_week``).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    asset,
    materialize,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from repo_pipelines.collection import report_table
from repo_pipelines.definitions import build_definitions
from repo_pipelines.io_manager import S3RepoIOManager
from repo_pipelines.resources import S3RepoResource
from s3repo_core import CollectReport, Digest, ManifestRow, NotExistError

from .asset_week import run_week
from .localserver import LocalS3, start_server

__all__ = ["Demo", "DemoFailure", "main"]

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "s3repo-demo"
#: The week's own bucket: moto's in-process servers share their buckets, so a week run
#: after the demo in one process (the test session) must not collect the demo's.
WEEK_BUCKET = "s3repo-week"
PREFIX = "artifacts"
#: workspace.yaml's code location ("repo_pipelines", the module) and its one repository
#: (a Definitions is "__repository__"). The UI lists on a job's page the runs tagged with
#: this label: the demo's runs, made in process, say it so that ``--ui`` shows them there.
WORKSPACE_REPOSITORY = "__repository__@repo_pipelines"
#: Shortened for the demo; the defaults are 24 h, 1 h and 60 s.
GRACE, REFRESH_WINDOW, SETTLE = 5.0, 1.0, 1.0


class DemoFailure(Exception):
    """A check of the demo did not hold."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


def say(text: str = "") -> None:
    print(text, flush=True)


def make_builds(root: Path) -> tuple[Path, Path]:
    """Two builds' output directories; build-2 shares its config files with build-1."""
    rng = random.Random(2026)
    build1, build2 = root / "build-1", root / "build-2"
    for build in (build1, build2):
        (build / "config").mkdir(parents=True)
        (build / "config" / "settings.json").write_text('{"learning_rate": 0.01}\n')
        (build / "config" / "labels.txt").write_text("cat\ndog\nbird\n")
    for n in range(4):
        (build1 / f"model-part-{n}.bin").write_bytes(rng.randbytes(200_000 + n))
    for n in range(3):
        (build2 / f"model-part-{n}.bin").write_bytes(rng.randbytes(300_000 + n))
    return build1, build2


class Demo:
    """The jobs of the code location, run in process against one local server."""

    def __init__(self, server: LocalS3, instance: DagsterInstance, bucket: str = BUCKET) -> None:
        self.server = server
        self.instance = instance
        self.bucket = server.create_bucket(bucket)
        self.resource = S3RepoResource(
            bucket=self.bucket,
            prefix=PREFIX,
            endpoint_url=server.endpoint_url,
            region=server.region,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            grace_seconds=GRACE,
            refresh_window_seconds=REFRESH_WINDOW,
            settle_seconds=SETTLE,
        )
        self.defs: Definitions = build_definitions(self.resource)
        self.manifests = f"s3://{self.bucket}/manifests/"

    def run(
        self,
        job: str,
        ops: dict[str, Any],
        *,
        expect_success: bool = True,
        defs: Definitions | None = None,
    ) -> Any:
        """Run ``job`` of ``defs`` (default: the code location's) in process."""
        # An expected failure is reported by the demo, not logged with its trace.
        level = "WARNING" if expect_success else "CRITICAL"
        job_def = (defs or self.defs).get_job_def(job)
        result: ExecuteInProcessResult = job_def.execute_in_process(
            run_config={"ops": ops, "loggers": {"console": {"config": {"log_level": level}}}},
            instance=self.instance,
            raise_on_error=False,
            tags={REPOSITORY_LABEL_TAG: WORKSPACE_REPOSITORY},
        )
        if expect_success and not result.success:
            raise DemoFailure(f"{job} failed: {failure_message(result)}")
        return result

    def materialize(self, assets: list[AssetsDefinition], io_manager: Any) -> Any:
        """Materialize ``assets`` through ``io_manager`` in process, quietly."""
        return materialize(
            assets,
            instance=self.instance,
            resources={"io_manager": io_manager},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )

    def ingest(self, build: Path, manifest: bool) -> list[ManifestRow]:
        ops: dict[str, Any] = {"ingest": {"config": {"paths": [str(build)]}}}
        if manifest:
            ops["write_manifest"] = {"config": {"dest": self.manifests}}
        result = self.run("ingest_job", ops)
        rows: list[ManifestRow] = result.output_for_node("ingest")
        size = sum(row.size for row in rows)
        say(f"ingest_job     {build.name}: {len(rows)} files, {size:,} bytes")
        if manifest:
            say(f"               manifest {result.output_for_node('write_manifest')}")
        return rows

    def collect(self, dry_run: bool, defs: Definitions | None = None) -> CollectReport:
        config = {"manifests": [self.manifests], "dry_run": dry_run}
        result = self.run("collect_job", {"plan_collection": {"config": config}}, defs=defs)
        report: CollectReport = result.output_for_node("report_collection")
        steps = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
        say(f"collect_job    {'dry run' if dry_run else 'for real'} ({len(steps)} steps):")
        for line in report_table(report).splitlines():
            say(f"               {line}")
        return report


def failure_message(result: ExecuteInProcessResult) -> str:
    """The first failed step's message, as the UI shows it."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        if data.error is not None:
            return data.error.message.strip()
    return "no step failure recorded"


def run_demo(server: LocalS3, instance: DagsterInstance, workdir: Path) -> None:
    demo = Demo(server, instance)
    say(f"repository     s3r://{demo.bucket}/{PREFIX} on {server.name} at {server.endpoint_url}")
    build1, build2 = make_builds(workdir)
    old = demo.ingest(build1, manifest=False)
    pass_grace(server)
    new = demo.ingest(build2, manifest=True)

    garbage = {row.digest for row in old} - {row.digest for row in new}
    dry = demo.collect(dry_run=True)
    check(dry.collected == len(garbage), f"the dry run would collect {dry.collected}")
    check(dry.live == len({row.digest for row in new}), f"the dry run found {dry.live} live")
    real = demo.collect(dry_run=False)
    check(real.collected == len(garbage), f"collected {real.collected}, not {len(garbage)}")
    check(real.bytes_collected == dry.bytes_collected, "the dry run and the run disagree")

    kept = new[-1]
    dest = workdir / "fetched.bin"
    demo.run("fetch_job", {"fetch": {"config": {"digest": str(kept.digest), "dest": str(dest)}}})
    check(dest.read_bytes() == Path(kept.source).read_bytes(), "fetched bytes differ")
    say(f"fetch_job      {kept.digest} -> {dest.name}, verified")
    gone = sorted(garbage, key=str)[0]
    failed = demo.run(
        "stat_job", {"stat": {"config": {"digests": [str(gone)]}}}, expect_success=False
    )
    check(not failed.success, f"stat of collected {gone} succeeded")
    say(f"stat_job       of a collected digest fails: {failure_message(failed)}")
    run_assets(demo, workdir)


def pass_grace(server: LocalS3) -> None:
    """Let the demo's grace period pass: at once on moto, in real time on JuiceFS."""
    how = "moving moto's clock" if server.name == "moto" else "waiting"
    say(f"               {how} {GRACE + 3:.0f} s: the demo's grace period (24 h by default)")
    server.let_time_pass(GRACE + 3)


def demo_assets(workdir: Path, round_: dict[str, int]) -> list[AssetsDefinition]:
    """A file, a table and a model built from both; what changes is set by ``round_``:
    the file every round, the table only in the last, the model with either."""

    # Kept by count alone: the last 2 materializations of each, whatever their age.
    policy = {"s3repo/keep_last": 2, "s3repo/keep_within_days": 0}

    @asset(description="Raw readings, a new file every round.", metadata=policy)
    def readings() -> Path:
        path = workdir / "readings.csv"
        path.write_text("".join(f"{i},{i * round_['n']}\n" for i in range(2000)))
        return path

    @asset(description="A feature table: the same until the last round.", metadata=policy)
    def features() -> pa.Table:
        scale = 2 if round_["n"] == 2 else 1
        return pa.table({"id": list(range(500)), "weight": [i * scale for i in range(500)]})

    @asset(
        description="A model-like blob from the readings and the features.",
        metadata=policy,
    )
    def model(readings: Path, features: pa.Table) -> bytes:
        size = len(readings.read_bytes()) + features.num_rows
        return f"model trained on {size} values".encode() * 100

    return [readings, features, model]


def run_assets(demo: Demo, workdir: Path) -> None:
    """Three materializations with changes, then retention and collection."""
    records = f"s3://{demo.bucket}/records/"
    # Op outputs (collect_job's plan and reports) keep the default: 7 days.
    io_manager = S3RepoIOManager(repository=demo.resource, manifests=records)
    round_ = {"n": 0}
    assets = demo_assets(workdir, round_)
    defs = build_definitions(demo.resource, io_manager=io_manager, assets=assets)
    digests: list[dict[str, Digest]] = []
    for n in range(3):
        round_["n"] = n
        result = demo.materialize(assets, io_manager)
        check(result.success, f"materialising the assets, round {n + 1}, failed")
        shown = {}
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            shown[materialization.asset_key.to_user_string()] = Digest.parse(meta["digest"])
        digests.append(shown)
        new = sum(
            1 for event in result.get_asset_materialization_events() if not _was_stored(event)
        )
        say(f"materialize    round {n + 1}: 3 assets, {new} new objects")
    pass_grace(demo.server)
    repo = demo.resource.repository()
    first, later = digests[0], digests[1:]
    only_first = {d for d in first.values() if all(d not in r.values() for r in later)}
    check(len(only_first) == 2, f"expected the first readings and model alone, got {only_first}")
    dry = demo.collect(dry_run=True, defs=defs)
    real = demo.collect(dry_run=False, defs=defs)
    check(real.collected == dry.collected == len(only_first), f"collected {real.collected}")
    for digest in only_first:
        try:
            repo.stat(digest)
        except NotExistError:
            continue
        raise DemoFailure(f"{digest}, named only by retired records, is still stored")
    for digest in {*later[0].values(), *later[1].values()}:
        repo.stat(digest)  # NotExistError would fail the demo
    say(
        f"retention      kept the last 2 materializations of each asset; collected "
        f"{real.collected} objects ({real.bytes_collected:,} bytes) that only the first "
        "named; the unchanged features table stayed"
    )


def _was_stored(event: Any) -> bool:
    metadata = event.step_materialization_data.materialization.metadata
    value = metadata.get("stored_before")
    return bool(getattr(value, "value", value))


def serve_ui(server: LocalS3, bucket: str, home: Path) -> int:
    """``dagster dev`` against the demo's server and bucket, until it stops."""
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        S3REPO_BUCKET=bucket,
        S3REPO_PREFIX=PREFIX,
        S3REPO_ENDPOINT_URL=server.endpoint_url,
        S3REPO_REGION=server.region,
        S3REPO_ACCESS_KEY_ID=server.access_key,
        S3REPO_SECRET_ACCESS_KEY=server.secret_key,
        S3REPO_MANIFESTS=f"s3://{bucket}/manifests/",
    )
    dagster = Path(sys.executable).parent / "dagster"
    say(f"starting dagster dev -w workspace.yaml (DAGSTER_HOME={home}); Ctrl-C stops it")
    process = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml"], cwd=ROOT, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.pipelines_demo",
        description="Run the Dagster jobs end to end on a local S3 server on 127.0.0.1: "
        "ingest two builds (the second with a manifest), collect as a dry run and for "
        "real, fetch and stat. Exits 0 only if every check held.",
    )
    parser.add_argument("--server", choices=["moto", "juicefs"], default="moto")
    parser.add_argument(
        "--week",
        action="store_true",
        help="instead: a week (see --days) of daily asset materializations and nightly "
        "collections, a day at a time on moto's clock, with a line of figures per day",
    )
    parser.add_argument(
        "--days", type=int, default=7, help="days of --week (default 7)", metavar="N"
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="then keep the server and start `dagster dev` on it, with the demo's runs "
        "kept in .dagster_home/",
    )
    args = parser.parse_args(argv)
    if args.week and args.server != "moto":
        parser.error("--week needs --server moto: its days pass on moto's movable clock")
    if args.days < 1:
        parser.error("--days is 1 or more")
    say(f"starting the {args.server} S3 server on 127.0.0.1")
    with (
        start_server(args.server) as server,
        tempfile.TemporaryDirectory(prefix="s3repo-demo-") as workdir,
    ):
        home = ROOT / ".dagster_home" if args.ui else Path(workdir) / "dagster_home"
        home.mkdir(exist_ok=True)
        try:
            # The demo's instance sends no telemetry (and writes no .telemetry beside it).
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            with DagsterInstance.local_temp(str(home)) as instance:
                if args.week:
                    run_week(Demo(server, instance, WEEK_BUCKET), Path(workdir), args.days)
                else:
                    run_demo(server, instance, Path(workdir))
        except DemoFailure as failure:
            say(f"demo FAILED: {failure}")
            return 1
        say("demo passed: every check held")
        if args.ui:
            return serve_ui(server, BUCKET, home)
    say("stopped the S3 server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
