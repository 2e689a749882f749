"""One side of one case, in a fresh process: ``python -m bench.worker SPEC_JSON``.

A fresh process per run makes its peak RSS that run's own, and keeps the client off
the GIL of the runner (which hosts the in-process moto server). The result is printed
as one ``BENCH-RESULT <json>`` line. ``python -m bench.worker --batch SPEC_JSON`` runs
whole cases in this one process instead, one run after another (``--smoke``), and prints
a line per case: every side's samples.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from typing import Any

from .cases import BY_NAME
from .context import Env

RESULT = "BENCH-RESULT "


def run_job(env: Env) -> dict[str, Any]:
    """A case's prepare, or one run of one of its sides: what it returns, as JSON data."""
    case = BY_NAME[env.case]
    if env.side == "prepare":
        if case.prepare is None:
            raise SystemExit(f"case {case.name} has nothing to prepare")
        return case.prepare(env)
    if case.uses_server:
        # Build the client and open a connection before either side's timed section:
        # building one costs ~65 ms, which a side that first uses it while timed paid.
        env.client.head_bucket(Bucket=env.bucket)
    amount = case.side(env.side)(env)
    return asdict(env.sample(amount))


def main(argv: list[str]) -> int:
    if argv[0] == "--batch":
        from .runner import run_case

        spec = json.loads(argv[1])
        base = Env.from_json(spec["env"])
        for name in spec["cases"]:
            samples = run_case(BY_NAME[name], replace(base, case=name), run_job)
            result = {side: [asdict(s) for s in runs] for side, runs in samples.items()}
            print(RESULT + json.dumps(result), flush=True)
        return 0
    print(RESULT + json.dumps(run_job(Env.from_json(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
