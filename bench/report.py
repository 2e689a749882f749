"""BENCHMARKS.md: the results table, with the machine, the versions and the command.

Everything from a ``## Analysis`` heading on is written by people (what a shortfall is
due to, with its profile) and is kept when a new run rewrites the rest of the file.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from .stats import Row

ANALYSIS = "## Analysis"
ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _output(*args: str) -> str:
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _juicefs_version() -> str:
    from devkit.localserver import juicefs_binary

    try:
        return _output(juicefs_binary(), "version").removeprefix("juicefs version ")
    except Exception:
        return "unknown"


def _commit() -> str:
    commit = _output("git", "rev-parse", "--short", "HEAD")
    dirty = _output("git", "status", "--porcelain", "--", "s3repo_core", "bench")
    return f"{commit} (with uncommitted changes)" if dirty and dirty != "unknown" else commit


def environment() -> list[tuple[str, str]]:
    """What the numbers were measured on."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("memory", _memory_gib()),
        ("system", platform.platform()),
        ("Python", platform.python_version()),
        ("boto3 / botocore", f"{version('boto3')} / {version('botocore')}"),
        ("moto", version("moto")),
        ("juicefs", _juicefs_version()),
        ("numpy", version("numpy")),
        ("s3repo", _commit()),
    ]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _pair(row: Row, server: bool) -> str:
    if row.server == "-" and server:
        return "-"
    return f"{_percent(row.cpu('ours', server))} / {_percent(row.cpu('baseline', server))}"


def _requests(row: Row) -> str:
    ours, baseline = row.requests("ours"), row.requests("baseline")
    if ours is None or baseline is None:
        return "-"
    return f"{ours:,.0f} / {baseline:,.0f}"


def table(rows: list[Row]) -> str:
    """The results as a Markdown table, one row per case and server."""
    lines = [
        "| case | server | ours | baseline | ratio ours/baseline | aim | met | "
        "memory ours / baseline (MiB) | client CPU ours / baseline | "
        "server CPU ours / baseline | requests ours / baseline |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        case = row.case
        aim = f"≥ {case.aim:g}"
        memory = f"{row.memory('ours'):,.0f} / {row.memory('baseline'):,.0f}"
        if case.memory_aim is not None:
            aim += f", memory ≤ {case.memory_aim:g}"
            memory += f" ({row.memory_ratio:.2f})"
        lines.append(
            f"| {case.name} | {row.server} "
            f"| {row.throughput('ours'):,.1f} {case.unit} "
            f"| {row.throughput('baseline'):,.1f} {case.unit} "
            f"| {row.ratio:.2f} | {aim} | {'yes' if row.met else 'NO'} | {memory} "
            f"| {_pair(row, False)} | {_pair(row, True)} | {_requests(row)} |"
        )
    return "\n".join(lines)


def render(rows: list[Row], command: str, reps: int) -> str:
    """The generated part of BENCHMARKS.md."""
    cases = {row.case.name: row.case for row in rows}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {now}: {reps} repetition(s) of each side, our code and "
        "its baseline alternating in the same run, each repetition in a fresh process, "
        "against S3 servers on 127.0.0.1 started by the run. Regenerate with "
        "`python3 dev.py bench` (see the README); the Analysis section is kept.",
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in environment()),
        "",
        "## Results",
        "",
        "Figures are medians. **ratio = our throughput / the baseline's** (above 1: ours is "
        "faster); the aim is the issue's. Memory is each worker's peak RSS, except for "
        "`classify`, where it is what the liveset holds (tracemalloc) and the aim also asks "
        "for at most a quarter of the set's. CPU is the share of one core used during the "
        "timed section by the benchmark process (client) and by the S3 server process "
        "(moto runs in the runner process, which does nothing else meanwhile). Requests "
        "are the HTTP requests the side sent to S3 during the timed section.",
        "",
        table(rows),
        "",
        "Cases (ours, then the baseline):",
        "",
        *(f"- **{c.name}**: {c.title}; baseline: {c.baseline}." for c in cases.values()),
        "",
    ]
    return "\n".join(parts)


def write(path: Path, rows: list[Row], command: str, reps: int) -> None:
    """Write the report to ``path``, keeping its Analysis section if it has one."""
    text = render(rows, command, reps)
    if path.exists():
        old = path.read_text()
        at = old.find(f"\n{ANALYSIS}\n")
        if at >= 0:
            text += old[at:]
    path.write_text(text)
