"""The sides of the case issue 14 added: how long ``s3repo stat`` takes, start to exit.

A shell loop runs the command once per file, so its start-up is most of its cost. Each
repetition of a side times one process, from its start to its exit, against the run's
server (moto in the runner's process, the JuiceFS gateway in its own), configured only
by the server's ``AWS_*`` variables, as a user's would be:

- **ours**: the installed entry point, ``s3repo stat DIGEST --repo s3r://BUCKET/PREFIX``
  (the ``s3repo`` beside the worker's Python);
- **floor**: ``python -c`` that imports botocore, builds an S3 client and sends the same
  HEAD: the least any Python command that stats an object does.

Both run with their bytecode cached, as an installed command's is (pip compiles it),
even where ``PYTHONDONTWRITEBYTECODE`` is set: the cache is kept in the run's workdir
(``PYTHONPYCACHEPREFIX``, so nothing is written beside the sources), and the case's
prepare runs each command once, untimed, to fill it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3repo_core import Digest
from s3repo_core._names import Layout

from .context import Env
from .s5cmd import _peak_rss as peak_rss_of

#: The prefix of the repository the object is stated in.
PREFIX = "cli-stat"
_BODY = b"issue 14: s3repo stat starts like a bare botocore process\n"
_FLOOR = (
    "import sys, botocore.session\n"
    "client = botocore.session.get_session().create_client('s3')\n"
    "client.head_object(Bucket=sys.argv[1], Key=sys.argv[2])\n"
)


def entry_point() -> Path:
    """The installed ``s3repo`` command of the worker's environment."""
    path = Path(sys.executable).with_name("s3repo")
    if not path.exists():
        raise RuntimeError(f"no s3repo entry point beside {sys.executable}: pip install -e .")
    return path


def _commands(env: Env) -> dict[str, list[str]]:
    digest = Digest.of(_BODY)
    bucket = env.bucket or ""
    return {
        "ours": [str(entry_point()), "stat", str(digest), "--repo", f"s3r://{bucket}/{PREFIX}"],
        "floor": [sys.executable, "-c", _FLOOR, bucket, Layout(PREFIX).object_key(digest)],
    }


def _environ(env: Env) -> dict[str, str]:
    """The worker's environment (the server's AWS_* variables), bytecode cached."""
    environ = {**os.environ, "PYTHONPYCACHEPREFIX": str(env.workdir / "pycache")}
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return environ


def _run(env: Env, side: str) -> int | None:
    """Run ``side``'s command once; its peak RSS, polled from /proc as it runs (a
    child's rusage starts at its parent's). An error unless it stated the object."""
    proc = subprocess.Popen(
        _commands(env)[side],
        env=_environ(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.01):
            rss = peak_rss_of(proc.pid)
            if rss is not None:
                peak.append(rss)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        done.set()
        poller.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{side} exited with {proc.returncode}: {err[-2000:]}")
    if side == "ours" and str(Digest.of(_BODY)) not in out:
        raise RuntimeError(f"s3repo stat printed {out!r}")
    return max(peak) if peak else None


def prepare_stat(env: Env) -> dict[str, Any]:
    """The object, stored untimed; each command run once, to cache its bytecode."""
    key = Layout(PREFIX).object_key(Digest.of(_BODY))
    env.setup_client.put_object(Bucket=env.bucket, Key=key, Body=_BODY)
    for side in ("ours", "floor"):
        _run(env, side)
    return {}


def _timed(side: str) -> Callable[[Env], float]:
    def run(env: Env) -> float:
        with env.measure():
            env.memory = _run(env, side)
        return 1.0

    run.__name__ = f"stat_{side}"
    return run


#: ``s3repo stat`` of one object, a process from start to exit.
stat_ours = _timed("ours")
#: botocore's import, an S3 client and one HEAD, in a ``python -c`` process.
stat_floor = _timed("floor")
