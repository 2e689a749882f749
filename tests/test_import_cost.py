"""What a process pays to import s3repo_core: only what it uses (issue 14).

``s3repo stat`` should start about as fast as a bare botocore process, so opening a
repository and putting, stating and getting objects loads neither pyarrow nor numpy
(manifests and collection need them) nor boto3 and s3transfer (managed transfers
do). The package imports its other names on first use (PEP 562). Each check runs in a
fresh interpreter, since this one has imported everything long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devkit.localserver import LocalS3

#: What the everyday paths must not load.
HEAVY = ["pyarrow", "numpy", "boto3", "s3transfer", "pandas", "polars"]

#: Prints the packages of HEAVY that the code before it loaded, as one line of JSON.
REPORT = 'print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules} & set(HEAVY))))'


def loaded_by(code: str, env: dict[str, str] | None = None, heavy: list[str] = HEAVY) -> list[str]:
    """The modules of ``heavy`` that ``code``, run in a fresh interpreter, imported."""
    program = f"import json, sys\nHEAVY = {heavy!r}\n{textwrap.dedent(code)}\n{REPORT}"
    result = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_the_value_types_and_dial_loads_no_dependency() -> None:
    code = "from s3repo_core import Digest, File, NotExistError, dial"
    assert loaded_by(code, heavy=[*HEAVY, "botocore"]) == []


def test_a_file_repository_loads_no_dependency(tmp_path: Path) -> None:
    code = f"""
    import s3repo_core
    repo = s3repo_core.dial("file://{tmp_path}")
    digest = repo.put(b"hello")
    assert repo.stat(digest).size == 5
    with repo.get(digest) as stream:
        assert stream.read() == b"hello"
    assert repo.verify().checked == 1 and repo.verify(shards=["a"]).checked <= 1
    assert [item.digest for item in repo.list_objects()] == [digest]
    assert repo.summary(by_shard=True).objects.count == 1
    """
    assert loaded_by(code, heavy=[*HEAVY, "botocore"]) == []


def test_stat_get_put_on_s3_load_only_botocore(moto_server: LocalS3, tmp_path: Path) -> None:
    bucket = moto_server.create_bucket()
    code = f"""
    import pathlib
    import s3repo_core
    repo = s3repo_core.dial("s3r://{bucket}/p")
    digest = repo.put(b"hello")
    assert repo.stat(digest) == s3repo_core.File(digest, 5)
    with repo.get(digest) as stream:
        assert stream.read() == b"hello"
    path = pathlib.Path("{tmp_path}") / "a.bin"
    path.write_bytes(b"a file")
    [stored] = repo.put_files([path])
    assert repo.stat(stored.digest).size == 6
    assert "botocore" in sys.modules
    """
    assert loaded_by(code, moto_server.environ()) == []


def test_the_other_public_names_resolve_on_first_use() -> None:
    code = """
    import s3repo_core
    assert "pyarrow" not in sys.modules and "numpy" not in sys.modules
    assert set(s3repo_core.__all__) <= set(dir(s3repo_core))
    from s3repo_core import read_liveset
    from s3repo_core._liveset_slices import read_liveset as defined
    assert read_liveset is defined is s3repo_core.read_liveset
    assert s3repo_core.ExactLiveset.__module__ == "s3repo_core.liveset"
    for name in s3repo_core.__all__:
        assert getattr(s3repo_core, name).__name__ == name, name
    try:
        s3repo_core.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("no AttributeError")
    """
    assert loaded_by(code, heavy=["pyarrow", "numpy"]) == ["numpy", "pyarrow"]


@pytest.mark.parametrize("name", ["_s3repository", "_filerepository", "_bucket", "_base"])
def test_the_repository_modules_need_neither_pyarrow_nor_numpy(name: str) -> None:
    assert loaded_by(f"import s3repo_core.{name}") == []
