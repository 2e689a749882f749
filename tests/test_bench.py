"""The benchmark suite keeps working: a smoke run (tiny sizes, moto only) and its report.

No timing is asserted: benchmarks measure, tests check that they can.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cases import CASES, write_data
from bench.context import SMOKE, Env, process_cpu
from bench.s5cmd import s5cmd_binary
from bench.servers import start_counted, tap_for
from bench.worker import RESULT
from devkit.localserver import LocalS3

#: The cases of issue 14, counted on the server.
ISSUE_14 = ["cli_stat_startup", "cli_put_dir_2k", "cli_verify_all", "verify_library"]
#: The cases of issue 12, which all count their requests (s5cmd's on the server).
ISSUE_12 = [case.name for case in CASES if case.time_aim is not None and case.name not in ISSUE_14]

ROOT = Path(__file__).resolve().parent.parent


def table_rows(text: str) -> list[list[str]]:
    """The cells of the results table (the one whose header starts with "| case")."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| case |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_s5cmd_is_installed() -> None:
    """s5cmd is a declared dev dependency (the benchmark's peer): missing, it fails here."""
    version = subprocess.run(
        [s5cmd_binary(), "version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert version.stdout.startswith("v"), version.stdout


@pytest.mark.timeout(60)
def test_a_run_in_a_fresh_worker_reports_a_sample(tmp_path: Path) -> None:
    """The full run's path, one worker process per run (a smoke run batches them)."""
    env = Env(case="hash", side="ours", sizes=SMOKE, workdir=tmp_path)
    write_data(env)
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", replace(env, side="baseline").to_json()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    sample = json.loads(line[len(RESULT) :])
    assert sample["amount"] == SMOKE.stream and sample["seconds"] > 0


def test_the_servers_count_the_requests_they_receive(s3server: LocalS3) -> None:
    """What the cases with s5cmd count: the requests that arrived within a window."""
    if s3server.name == "moto":
        server, tap = start_counted("moto")  # the bench's moto, behind its counting layer
    else:
        server, tap = s3server, tap_for(s3server)
    try:
        client = server.client()
        bucket = server.create_bucket()
        tap.start()
        client.put_object(Bucket=bucket, Key="before", Body=b"x")
        started = time.time()
        for i in range(5):
            client.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
        client.list_objects_v2(Bucket=bucket)
        ended = time.time()
        client.put_object(Bucket=bucket, Key="after", Body=b"x")
        assert tap.count([(started, ended), (ended, time.time())]) == [6, 1]
    finally:
        tap.stop()
        if server is not s3server:
            server.stop()


@pytest.mark.timeout(120)
def test_a_smoke_run_reports_every_case_with_a_ratio(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# old\n\n## Analysis\n\nWritten by hand, kept.\n")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--servers", "moto", "--output", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Where the server counts a boto3 side's requests, so does its client: they agree.
    assert "warning" not in done.stderr, done.stderr[-3000:]
    text = report.read_text()
    header, rule, *rows = table_rows(text)
    assert header[:7] == ["case", "server", "ours", "baseline", "ratio ours/baseline", "aim", "met"]
    assert len(rule) == len(header) and all(len(row) == len(header) for row in rows)
    assert sorted(row[0] for row in rows) == sorted(case.name for case in CASES)
    for row in rows:
        assert row[1] == ("moto" if next(c for c in CASES if c.name == row[0]).uses_server else "-")
        assert float(row[4]) > 0
        assert row[6] in ("yes", "NO")
    by_case = {row[0]: row for row in rows}
    assert header[-1] == "requests ours / baseline"
    assert by_case["classify"][-1] == "-"  # no S3 in it
    # The baseline sends one PutObject per file; ours one LIST (which of them are stored:
    # none) and then a PutObject per file.
    ours, baseline = (int(n.replace(",", "")) for n in by_case["ingest"][-1].split(" / "))
    assert (ours, baseline) == (SMOKE.files + 1, SMOKE.files)
    # Issue 12's cases: a request count for each side, the best of several peers named,
    # DeleteObjects counted where the aim bounds them.
    assert len(ISSUE_12) == 11
    for name in ISSUE_12:
        ours, baseline = by_case[name][-1].split(";")[0].split(" / ")
        assert int(ours.replace(",", "")) > 0 and int(baseline.replace(",", "")) > 0, name
    for name in ("ingest_16k_new", "ingest_1m_new"):
        assert "(s5cmd; boto3 " in by_case[name][3] or "(boto3; s5cmd " in by_case[name][3]
    # s5cmd sync of a synced directory lists it: one page.
    assert by_case["reingest_16k_2d"][-1].endswith(" / 1")
    assert "requests ≤ 4" in by_case["reingest_16k_now"][5]
    assert "DeleteObjects" in by_case["collect_100k"][-1]
    assert "DeleteObjects ≤ 17" in by_case["collect_100k"][5]
    # s3repo stat and the floor: one process each, which the server saw send one HEAD.
    assert "(time ≤ 1.25)" in by_case["cli_stat_startup"][5]
    assert by_case["cli_stat_startup"][-1] == "1 / 1"
    # s3repo put DIR and put_files: a LIST and a PutObject per file; s5cmd a PutObject
    # per file, with its own aim, and its ratio beside its figure.
    assert "(time ≤ 1.1); s5cmd ≥ 0.83 (time ≤ 1.2)" in by_case["cli_put_dir_2k"][5]
    assert "(put_files; s5cmd " in by_case["cli_put_dir_2k"][3]
    assert ", ratio " in by_case["cli_put_dir_2k"][3]
    put = f"{SMOKE.files + 1} / {SMOKE.files + 1}; s5cmd {SMOKE.files}"
    assert by_case["cli_put_dir_2k"][-1] == put
    # s3repo verify --all lists (and reads the clock, with a LIST), then a GET each; the
    # boto3 pool a GET each, in the worker and in a process of its own.
    verify = f"{SMOKE.large_files + 2} / {SMOKE.large_files}"
    assert by_case["cli_verify_all"][-1] in (
        f"{verify}; boto3 process {SMOKE.large_files}",
        f"{verify}; boto3 {SMOKE.large_files}",
    )
    assert "(boto3; boto3 process " in by_case["cli_verify_all"][3] or (
        "(boto3 process; boto3 " in by_case["cli_verify_all"][3]
    )
    assert by_case["verify_library"][-1] == verify
    assert "python -m bench --smoke --servers moto --output" in text
    for fact in ("| CPU |", "| Python |", "| boto3 / botocore |", "| moto |", "| s3repo |"):
        assert fact in text
    assert text.startswith("# Benchmarks\n")
    assert text.endswith("## Analysis\n\nWritten by hand, kept.\n")
    assert "BENCH-RESULT" not in done.stdout  # workers' output stays with the runner


def test_each_server_names_the_process_that_serves_it(s3server: LocalS3) -> None:
    if s3server.name == "moto":
        assert s3server.pid == os.getpid()  # ThreadedMotoServer runs in this process
    else:
        assert s3server.pid != os.getpid()
    before = process_cpu(s3server.pid)
    client = s3server.client()
    bucket = s3server.create_bucket()
    for i in range(200):
        client.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    assert process_cpu(s3server.pid) > before


def test_the_scale_benchmark_collects_the_synthetic_garbage_and_stops_its_endpoint(
    tmp_path: Path,
) -> None:
    """bench.scale end to end on 3,000 synthetic objects: exactly half deleted, by one
    step and by a step per shard, and the endpoint process gone afterwards."""
    out = tmp_path / "scale.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--objects",
            "3000",
            "--latency",
            "0",
            "--shards",
            "0,1",
            "--workdir",
            str(tmp_path),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = [json.loads((tmp_path / f"result-3000-0.0-{w}.json").read_text()) for w in (0, 1)]
    for result in results:
        assert sum(step["collected"] for step in result["steps"]) == 1500
        assert sum(step["scanned"] for step in result["steps"]) == 3000
        assert "'keys deleted': 1500" in result["requests"]
    assert len(results[1]["steps"]) == 18
    assert "| one step |" in out.read_text() and "| 16 (+2) |" in out.read_text()
    left = subprocess.run(["pgrep", "-f", "bench.synthetic_s3 --objects=3000"], capture_output=True)
    assert left.returncode == 1, left.stdout  # no endpoint left running


def test_a_timed_run_waits_for_a_busy_server_and_not_for_an_idle_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import runner

    monkeypatch.setattr(runner, "QUIET_WAIT", 2.0)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen(
        [sys.executable, "-c", "import time; print('asleep', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert idle.stdout is not None and idle.stdout.readline() == b"asleep\n"
        assert runner.wait_until_quiet(busy.pid) >= 2.0
        assert runner.wait_until_quiet(idle.pid) < 1.0  # a window or two, not the limit
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()
        if idle.stdout is not None:
            idle.stdout.close()
