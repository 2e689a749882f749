"""The benchmark suite keeps working: a smoke run (tiny sizes, moto only) and its report.

No timing is asserted: benchmarks measure, tests check that they can.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cases import CASES
from bench.context import SMOKE, process_cpu
from devkit.localserver import LocalS3

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
