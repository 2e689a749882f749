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

from .cases import Case
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


def _s5cmd_version() -> str:
    from .s5cmd import s5cmd_binary

    try:
        return _output(s5cmd_binary(), "version")
    except Exception:
        return "not installed"


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
        ("s5cmd", _s5cmd_version()),
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
    text = f"{ours:,.0f} / {baseline:,.0f}"
    for side in row.case.sides[1:]:
        count = row.peer_requests(side)
        if side != row.best_peer and count is not None:  # the other peers', by name
            text += f"; {row.case.peer_name(side)} {count:,.0f}"
    deletes = row.deletes("ours"), row.deletes("baseline")
    if row.case.delete_limit is not None and None not in deletes:
        text += f"; DeleteObjects {deletes[0]:,.0f} / {deletes[1]:,.0f}"
    return text


def _aim(row: Row) -> str:
    """The case's aims: throughput ratio (or time ratio), memory, requests."""
    case = row.case
    if case.time_aim is None:
        aim = f"≥ {case.aim:g}"
    else:
        aim = f"≥ {case.aim:.2f} (time ≤ {case.time_aim:g}"
        aim += f"; goal ≤ {case.time_goal:g})" if case.time_goal is not None else ")"
    for side, time_aim in case.peer_time_aims:
        aim += f"; {case.peer_name(side)} ≥ {1 / time_aim:.2f} (time ≤ {time_aim:g})"
    if case.memory_aim is not None:
        aim += f", memory ≤ {case.memory_aim:g}"
    if case.request_limit is not None:
        aim += f", requests ≤ {case.request_limit(row.sizes)}"
    if case.delete_limit is not None:
        aim += f", DeleteObjects ≤ {case.delete_limit(row.sizes)}"
    return aim


def _baseline(row: Row) -> str:
    """The baseline's figure; with several peers, which was best (or the base, where each
    has an aim) and what the others did, with our ratio to those aimed at."""
    case = row.case
    text = f"{row.throughput('baseline'):,.1f} {case.unit}"
    if case.peers:
        best = row.best_peer
        aimed = dict(case.peer_time_aims)
        others = [
            f"{case.peer_name(side)} {row.peer_throughput(side):,.1f}"
            + (f", ratio {row.peer_ratio(side):.2f}" if side in aimed else "")
            for side in case.sides[1:]
            if side != best
        ]
        text += f" ({case.peer_name(best)}; {', '.join(others)})"
    return text


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
        memory = f"{row.memory('ours'):,.0f} / {row.memory('baseline'):,.0f}"
        if case.memory_aim is not None:
            memory += f" ({row.memory_ratio:.2f})"
        lines.append(
            f"| {case.name} | {row.server} "
            f"| {row.throughput('ours'):,.1f} {case.unit} "
            f"| {_baseline(row)} "
            f"| {row.ratio:.2f} | {_aim(row)} | {'yes' if row.met else 'NO'} | {memory} "
            f"| {_pair(row, False)} | {_pair(row, True)} | {_requests(row)} |"
        )
    return "\n".join(lines)


def _own_reps(case: Case) -> str:
    if case.repetitions is None:
        return ""
    return f" ({case.repetitions} repetition of each side, unless `--repetitions` is given)"


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
        "Issue 12's (and 14's) aims are stated as our time / the peer's, at most: the aim column "
        "gives its inverse as a throughput ratio, with the time ratio in brackets. Where a "
        "case has several peers, the baseline is the fastest (named, with the others' "
        "figures). s5cmd runs with `--numworkers` of the run's concurrency; its memory is "
        "the s5cmd process's peak RSS and its CPU is counted in the client's. The cases "
        "with s5cmd count the requests of both sides on the server (moto: a WSGI layer in "
        "its process; the JuiceFS gateway: its admin trace stream), since s5cmd's are out "
        "of boto3's sight; the others count them in the side's boto3 client. Our side of "
        "the new-file ingest cases and of verify_library, and the library side of "
        "cli_put_dir_2k, use the client `dial` builds (`make_client`), as a user's would: "
        "it sends PutObject directly (s3repo_core/_leanput.py); every other side uses one "
        "shared boto3 client. The "
        "re-ingest and collect_100k cases run on moto only: their ages are made by moving "
        "moto's clock (re-ingest: the set is stored, then the clock moved on by the age; "
        "collect_100k: every object is made older than grace, 24 h), and collect_100k's "
        "objects are written through moto's in-process fast path. Each repetition rebuilds "
        "its state untimed and removes it after. Issue 14's cases time whole `s3repo` "
        "processes (the installed entry point, configured by `AWS_*` variables and "
        "`S3REPO_URL`), bytecode cached, at the command's own concurrency (the "
        "repository's default) on every side; the server counts their requests (see "
        "bench/cases14.py). cli_put_dir_2k has an aim against each of its peers: the "
        "baseline is the library's put_files, and its ratio to s5cmd is given beside "
        "s5cmd's figure. cli_verify_all's baseline is the boto3 pool in the worker; beside "
        "it, the same pool in a `python -c` process, which starts as ours does. "
        "verify_library is `verify()` in the worker, against that pool: read throughput "
        "without a process start.",
        "",
        table(rows),
        "",
        "Cases (ours, then the baseline):",
        "",
        *(
            f"- **{c.name}**: {c.title}; baseline: {c.baseline}{_own_reps(c)}."
            for c in cases.values()
        ),
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
