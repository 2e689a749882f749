"""``python -m bench``: run the benchmarks and write BENCHMARKS.md (see bench/__init__)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .cases import BY_NAME, CASES
from .context import FULL, SMOKE
from .report import ROOT, table, write
from .runner import log, run


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark s3repo against plain boto3 on local S3 servers.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one repetition, one worker process per server: checks that the "
        "benchmarks run, measures nothing",
    )
    parser.add_argument("--servers", default="moto,juicefs", help="comma-separated: moto, juicefs")
    parser.add_argument(
        "--cases", default=",".join(BY_NAME), help=f"comma-separated, of: {', '.join(BY_NAME)}"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        help="runs of each side per case (default 3, or the case's own: "
        + ", ".join(f"{case.name} {case.repetitions}" for case in CASES if case.repetitions)
        + "; 1 with --smoke)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown report (default BENCHMARKS.md; none with --smoke)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.cases.split(",")) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    bad = set(args.servers.split(",")) - {"moto", "juicefs"}
    if bad:
        parser.error(f"unknown servers: {', '.join(sorted(bad))}")
    if args.repetitions is not None and args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    wanted = set(args.cases.split(","))
    cases = [case for case in CASES if case.name in wanted]
    reps = args.repetitions or (1 if args.smoke else 3)
    output = args.output or (None if args.smoke else ROOT / "BENCHMARKS.md")
    sizes = SMOKE if args.smoke else FULL
    rows = run(
        cases, args.servers.split(","), sizes, reps, batched=args.smoke, own=not args.repetitions
    )
    print(table(rows))
    if output is not None:
        write(output, rows, shlex.join(["python", "-m", "bench", *argv]), reps)
        log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
