"""One side of one case, in a fresh process: ``python -m bench.worker SPEC_JSON``.

A fresh process per run makes its peak RSS that run's own, and keeps the client off
the GIL of the runner (which hosts the in-process moto server). The result is printed
as one ``BENCH-RESULT <json>`` line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from .cases import BY_NAME
from .context import Env

RESULT = "BENCH-RESULT "


def main(argv: list[str]) -> int:
    env = Env.from_json(argv[0])
    case = BY_NAME[env.case]
    if env.side == "prepare":
        if case.prepare is None:
            raise SystemExit(f"case {case.name} has nothing to prepare")
        print(RESULT + json.dumps(case.prepare(env)), flush=True)
        return 0
    side = case.ours if env.side == "ours" else case.base
    if case.uses_server:
        # Build the client and open a connection before either side's timed section:
        # building one costs ~65 ms, which a side that first uses it while timed paid.
        env.client.head_bucket(Bucket=env.bucket)
    amount = side(env)
    print(RESULT + json.dumps(asdict(env.sample(amount))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
