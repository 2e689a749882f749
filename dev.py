#!/usr/bin/env python3
"""Set up the development environment and run the project's main commands.

Needs only Python 3.11+ (standard library). Every command first makes sure that
``.venv`` exists beside this file and that the project is installed in it with its
dev extras, re-installing whenever pyproject.toml has changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / "s3repo-install.sha256"

USAGE = """\
usage: python3 dev.py COMMAND [ARGS...]

Every command first sets up .venv beside dev.py (created if missing; the project is
installed with `pip install -e '.[dev]'` whenever pyproject.toml has changed).

commands:
  setup           only set up .venv
  demo [ARGS]     run the Dagster jobs end to end on a local S3 server
                  (python -m devkit.pipelines_demo ARGS; e.g. `demo --server juicefs`;
                  `demo --ui` then starts `dagster dev` on the same server;
                  `demo --week` is a week of daily assets and collections)
  tour [ARGS]     a tour of the library alone on a local S3 server
                  (python -m devkit.tour ARGS)
  test [ARGS]     run `ruff check .` and `mypy --strict s3repo_core`, then pytest
                  ARGS (e.g. `test tests/test_cli.py -x`);
                  set S3REPO_TEST_SERVERS=moto to test against one S3 server only
  faults [ARGS]   the fault suite in long mode: pytest tests/test_faults.py
                  tests/test_crash.py ARGS with S3REPO_FAULT_SEEDS=200 (set it, and
                  S3REPO_FAULT_SEED, S3REPO_FAULT_CLASSES, S3REPO_TEST_SERVERS, to
                  choose); prints the figures per fault class and server at the end
                  and writes them to S3REPO_FAULT_FIGURES (default: a JSON file in
                  the temp directory)
  bench [ARGS]    run the benchmarks and write BENCHMARKS.md (python -m bench ARGS;
                  e.g. `bench --smoke`, `bench --servers moto --cases put,get`)
  lint            run `ruff check .` and `mypy --strict s3repo_core`

The exit code is the command's own (pytest's if the tests fail, else ruff's or mypy's).
"""


def step(message: str) -> None:
    print(f"dev: {message}", flush=True)


def run(args: list[str | Path]) -> int:
    """Run ``args`` from the repository root with the venv first on PATH."""
    env = dict(os.environ, VIRTUAL_ENV=str(VENV))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.pop("PYTHONHOME", None)
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def setup() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on any system python)
        step(f"error: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
        return 1
    if not PYTHON.exists():
        step(f"creating {VENV.name} with {sys.executable} -m venv")
        if subprocess.call([sys.executable, "-m", "venv", str(VENV)]) != 0:
            step("error: could not create the venv (on Debian/Ubuntu: apt install python3-venv)")
            return 1
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    installed = STAMP.read_text().strip() if STAMP.exists() else None
    if installed == wanted:
        step(f"{VENV.name} is up to date with pyproject.toml")
        return 0
    why = "pyproject.toml changed" if installed else "not installed yet"
    step(f"installing the project: pip install -e '.[dev]' ({why})")
    code = run(
        [PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".[dev]"]
    )
    if code != 0:
        step(f"error: pip install failed with exit code {code}")
        return code
    STAMP.write_text(wanted + "\n")
    return 0


def lint() -> int:
    """ruff on everything, then mypy --strict on the library; the first failure's code."""
    step("ruff check .")
    ruff = run([PYTHON, "-m", "ruff", "check", "."])
    step("mypy --strict s3repo_core")
    mypy = run([PYTHON, "-m", "mypy", "--strict", "s3repo_core"])
    return ruff or mypy


def faults(args: list[str]) -> int:
    """The fault suite with many seeds (the normal test run has a short mode of it)."""
    seeds = os.environ.setdefault("S3REPO_FAULT_SEEDS", "200")
    figures = Path(tempfile.gettempdir()) / "s3repo-fault-figures.json"
    os.environ.setdefault("S3REPO_FAULT_FIGURES", str(figures))
    tests = ["tests/test_faults.py", "tests/test_crash.py"]
    step(f"pytest {' '.join(tests + args)} (S3REPO_FAULT_SEEDS={seeds})")
    return run([PYTHON, "-m", "pytest", "--timeout=0", *tests, *args])


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("--help", [])
    if command in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if command not in ("setup", "demo", "tour", "test", "lint", "bench", "faults"):
        print(USAGE, end="", file=sys.stderr)
        print(f"\ndev.py: error: unknown command {command!r}", file=sys.stderr)
        return 2
    code = setup()
    if code != 0 or command == "setup":
        return code
    if command == "lint":
        return lint()
    if command == "bench":
        step(" ".join(["python -m bench", *args]))
        return run([PYTHON, "-m", "bench", *args])
    if command == "faults":
        return faults(args)
    if command in ("demo", "tour"):
        module = "devkit.pipelines_demo" if command == "demo" else "devkit.tour"
        step(" ".join(["python -m", module, *args]))
        return run([PYTHON, "-m", module, *args])
    lint_code = lint()
    step(" ".join(["pytest", *args]))
    test_code = run([PYTHON, "-m", "pytest", *args])
    if lint_code != 0:
        step(f"ruff check failed (exit code {lint_code}); pytest exited with {test_code}")
    return test_code or lint_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
