"""Python values as repository objects (s3repo_core.values and the tree encoding).

Each encoding gives equal bytes for equal values, so a value is stored once however
often it is produced, and every way back verifies the bytes before using them.
Most run on moto; the round trips that exercise the repository's write and read
paths (a directory, files handed over open, tampered bytes) run on every S3 server
of the session (the ``repo`` fixture).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from devkit.localserver import LocalS3
from s3repo_core import (
    Digest,
    File,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    PickleRefusedError,
    S3Repository,
    StoredValue,
    Tree,
    TreeEntry,
    ValueFormat,
    load_value,
    store_value,
)
from s3repo_core.values import PICKLE_PROTOCOL


@pytest.fixture(scope="module")
def moto_client(moto_server: LocalS3) -> Any:
    return moto_server.client()


@pytest.fixture
def moto_repo(moto_client: Any) -> S3Repository:
    """A repository in a fresh bucket on moto: what is tested here is not the server."""
    name = f"values-{uuid.uuid4().hex[:16]}"
    moto_client.create_bucket(Bucket=name)
    return S3Repository(name, "values", client=moto_client, part_size=5 * 1024 * 1024)


def stored_keys(repo: S3Repository) -> set[str]:
    listing = repo.client.list_objects_v2(Bucket=repo.bucket, Prefix=repo.prefix + "/")
    return {item["Key"] for item in listing.get("Contents", [])}


def file_of(data: bytes) -> File:
    return File(Digest.of(data), len(data))


def make_tree_dir(root: Path) -> Path:
    """A directory with a nested file, an executable, an empty file and a duplicate."""
    (root / "build" / "lib" / "deep").mkdir(parents=True)
    (root / "build" / "lib" / "deep" / "nested.txt").write_bytes(b"nested content\n")
    (root / "build" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "build" / "run.sh").chmod(0o755)
    (root / "build" / "empty").write_bytes(b"")
    (root / "build" / "copy.txt").write_bytes(b"nested content\n")
    (root / "build" / "caf\u00e9.txt").write_bytes(b"accents")
    return root / "build"


def listing(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under root: its bytes and whether its owner may execute it."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- the tree encoding -------------------------------------------------------------------


def test_a_tree_has_one_canonical_encoding() -> None:
    run, data = file_of(b"#!/bin/sh\n"), file_of(b"a,b\n")
    entries = [
        TreeEntry("run.sh", run, executable=True),
        TreeEntry("data/caf\u00e9.csv", data),
    ]

    encoded = Tree.of(entries).encode()

    assert encoded == (
        b'{"s3repo":"tree","version":1}\n'
        + f'{{"digest":"{data.digest}","executable":false,"path":"data/caf\u00e9.csv",'
        f'"size":4}}\n'.encode()
        + f'{{"digest":"{run.digest}","executable":true,"path":"run.sh","size":10}}\n'.encode()
    )
    assert Tree.of(list(reversed(entries))).encode() == encoded  # order given does not matter
    assert Tree.decode(encoded) == Tree.of(entries)


def good_line(path: str = "a") -> str:
    return f'{{"digest":"{Digest.of(b"")}","executable":false,"path":"{path}","size":0}}'


HEADER = '{"s3repo":"tree","version":1}'
ESCAPED = good_line().replace('"path":"a"', '"path":"\\u0061"')  # "a", escaped


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"{HEADER}\n{good_line()}", "no final newline"),
        (f'{{"s3repo":"tree","version":2}}\n{good_line()}\n', "another version"),
        (f"{HEADER}\n{good_line('b')}\n{good_line('a')}\n", "not sorted"),
        (f"{HEADER}\n{good_line('a')}\n{good_line('a')}\n", "a path twice"),
        (f"{HEADER}\n{good_line('a')}\n{good_line('a/b')}\n", "a file and a directory"),
        (f"{HEADER}\n{good_line('../x')}\n", "leaves the directory"),
        (f"{HEADER}\n{good_line('/etc/x')}\n", "absolute"),
        (f"{HEADER}\n{good_line('a//b')}\n", "an empty component"),
        (f"{HEADER}\n{good_line('./a')}\n", "a dot component"),
        (f"{HEADER}\n{good_line().replace(',', ', ')}\n", "not compact"),
        (f"{HEADER}\n{ESCAPED}\n", "an escape"),
        (f"{HEADER}\n{good_line().replace('false', '0')}\n", "executable not a bool"),
        (f'{HEADER}\n{good_line()[:-1]},"mode":7}}\n', "an extra key"),
        (f"{HEADER}\n{good_line().replace('sha256', 'md5')}\n", "a bad digest"),
        ("", "empty"),
    ],
)
def test_decoding_refuses_anything_but_the_canonical_encoding(text: str, why: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Tree.decode(text.encode())


def test_the_empty_tree_is_the_header_alone() -> None:
    assert Tree.of([]).encode() == (HEADER + "\n").encode()
    assert Tree.decode(Tree.of([]).encode()).entries == ()


# -- round trips through a repository -----------------------------------------------------


def test_bytes_round_trip_and_a_second_store_finds_them(moto_repo: S3Repository) -> None:
    first = store_value(moto_repo, bytearray(b"some bytes"))
    again = store_value(moto_repo, b"some bytes")

    stored = file_of(b"some bytes")
    assert first == StoredValue(stored, ValueFormat.BYTES, False, (stored,), written=(stored,))
    assert again.stored_before and again.file == first.file and again.written == ()
    assert load_value(moto_repo, first.digest, "bytes") == b"some bytes"


def test_a_file_round_trips_under_its_name(moto_repo: S3Repository, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(300_000))

    stored = store_value(moto_repo, source)
    loaded = load_value(
        moto_repo, stored.digest, stored.format, as_type=Path, name=stored.name, work_dir=tmp_path
    )

    assert (stored.format, stored.name, stored.file) == (
        ValueFormat.FILE,
        "model.onnx",
        file_of(source.read_bytes()),
    )
    assert isinstance(loaded, Path) and loaded.name == "model.onnx" and loaded != source
    assert loaded.parent.parent == tmp_path
    assert loaded.read_bytes() == source.read_bytes()
    assert load_value(moto_repo, stored.digest, stored.format, as_type=bytes) == source.read_bytes()


class BodySpy:
    """A repository that notes the bodies it is handed, then does as the real one does."""

    def __init__(self, repo: S3Repository) -> None:
        self.repo = repo
        self.bodies: list[tuple[str, type, int | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.repo, name)

    def put(self, body: Any) -> Digest:
        self.bodies.append(("put", type(body), None))
        return self.repo.put(body)

    def put_file(self, file: File, body: Any) -> None:
        position = body.tell() if hasattr(body, "tell") else None
        self.bodies.append(("put_file", type(body), position))
        self.repo.put_file(file, body)


@pytest.mark.parametrize("kind", ["file", "table", "pickle"])
def test_files_tables_and_pickles_reach_the_core_as_open_files(
    repo: S3Repository, tmp_path: Path, kind: str
) -> None:
    values: dict[str, object] = {
        "file": tmp_path / "big.bin",
        "table": pa.table({"n": list(range(1000))}),
        "pickle": {"n": list(range(1000))},
    }
    (tmp_path / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    spy = BodySpy(repo)

    stored = store_value(spy, values[kind])  # type: ignore[arg-type]

    # Streamed from the start of a file, never bytes in memory: the core reads it in
    # parts (and not at all if the content is stored).
    [(method, body_type, position)] = spy.bodies
    assert (method, position) == ("put_file", 0)
    assert not issubclass(body_type, bytes | bytearray | memoryview)
    assert repo.stat(stored.digest) == stored.file


def test_a_directory_round_trips_as_a_tree(repo: S3Repository, tmp_path: Path) -> None:
    source = make_tree_dir(tmp_path / "src")

    stored = store_value(repo, source)
    loaded = load_value(repo, stored.digest, stored.format, work_dir=tmp_path, name=stored.name)

    assert stored.format is ValueFormat.TREE and stored.tree is not None
    assert [e.path for e in stored.tree.entries] == [
        "caf\u00e9.txt",
        "copy.txt",
        "empty",
        "lib/deep/nested.txt",
        "run.sh",
    ]
    assert [e.path for e in stored.tree.entries if e.executable] == ["run.sh"]
    # The output's object is the tree; every distinct file is stored too, and named.
    with repo.get(stored.digest) as tree_stream:
        assert Tree.decode(tree_stream.read()) == stored.tree
    contents = {data for data, _ in listing(source).values()}
    assert set(stored.objects) == {stored.file} | {file_of(d) for d in contents}
    for file in stored.objects:
        assert repo.stat(file.digest) == file
    assert isinstance(loaded, Path) and loaded.name == "build"
    assert listing(loaded) == listing(source)


def test_equal_directories_give_one_tree_wherever_they_are(
    moto_repo: S3Repository, tmp_path: Path
) -> None:
    one = store_value(moto_repo, make_tree_dir(tmp_path / "one"))
    other = store_value(moto_repo, make_tree_dir(tmp_path / "other"))
    (tmp_path / "other" / "build" / "run.sh").chmod(0o644)
    changed = store_value(moto_repo, tmp_path / "other" / "build")

    assert other.digest == one.digest and other.stored_before
    assert changed.digest != one.digest  # the execute bit is part of the tree


def test_a_directory_with_a_symlink_is_refused_and_nothing_is_stored(
    moto_repo: S3Repository, tmp_path: Path
) -> None:
    source = make_tree_dir(tmp_path / "src")
    (source / "link").symlink_to(source / "run.sh")

    with pytest.raises(InvalidArgumentError, match="symlink"):
        store_value(moto_repo, source)
    assert stored_keys(moto_repo) == set()


def test_a_missing_path_is_not_exist(moto_repo: S3Repository, tmp_path: Path) -> None:
    with pytest.raises(NotExistError):
        store_value(moto_repo, tmp_path / "nothing")


def test_equal_tables_give_equal_parquet_bytes(moto_repo: S3Repository) -> None:
    rows = 50_000
    table = pa.table({"n": list(range(rows)), "s": [f"v{n % 97}" for n in range(rows)]})
    rechunked = pa.concat_tables([table.slice(0, 12_345), table.slice(12_345)])
    assert rechunked.column("n").num_chunks == 2 and rechunked.equals(table)

    first = store_value(moto_repo, table)
    second = store_value(moto_repo, rechunked)

    assert (first.format, first.rows, first.stored_before) == (ValueFormat.PARQUET, rows, False)
    assert second.digest == first.digest and second.stored_before
    loaded = load_value(moto_repo, first.digest, first.format)
    assert isinstance(loaded, pa.Table) and loaded.equals(table)


def test_a_dataframe_round_trips_through_parquet(moto_repo: S3Repository) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})

    stored = store_value(moto_repo, frame)
    again = store_value(moto_repo, frame.copy())

    assert stored.format is ValueFormat.PARQUET and again.digest == stored.digest
    loaded = load_value(moto_repo, stored.digest, stored.format, as_type=pd.DataFrame)
    assert isinstance(loaded, pd.DataFrame) and loaded.equals(frame)
    table = load_value(moto_repo, stored.digest, stored.format, as_type=pa.Table)
    assert isinstance(table, pa.Table) and table.column("a").to_pylist() == [1, 2, 3]


def test_a_polars_frame_round_trips_through_parquet(moto_repo: S3Repository) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})

    stored = store_value(moto_repo, frame)
    again = store_value(moto_repo, frame.clone())

    assert (stored.format, stored.rows) == (ValueFormat.PARQUET, 3)  # not a pickle
    assert again.digest == stored.digest and again.stored_before
    loaded = load_value(moto_repo, stored.digest, stored.format, as_type=pl.DataFrame)
    assert isinstance(loaded, pl.DataFrame) and loaded.equals(frame)
    table = load_value(moto_repo, stored.digest, stored.format, as_type=pa.Table)
    assert isinstance(table, pa.Table) and table.column("b").to_pylist() == ["x", "y", "z"]


def test_other_values_are_pickled_with_the_pinned_protocol(moto_repo: S3Repository) -> None:
    value = {"weights": [0.5, 1.5], "name": "model"}

    stored = store_value(moto_repo, value)

    with moto_repo.get(stored.digest) as stream:
        data = stream.read()
    assert data == pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    assert stored.format is ValueFormat.PICKLE
    assert load_value(moto_repo, stored.digest, stored.format) == value


def test_pickle_refused_stores_nothing_and_loads_nothing(moto_repo: S3Repository) -> None:
    with pytest.raises(PickleRefusedError, match="allow_pickle"):
        store_value(moto_repo, {"a": 1}, allow_pickle=False)
    assert stored_keys(moto_repo) == set()

    stored = store_value(moto_repo, {"a": 1})
    with pytest.raises(PickleRefusedError):
        load_value(moto_repo, stored.digest, stored.format, allow_pickle=False)
    # Its bytes may still be read: reading them runs nothing.
    assert load_value(moto_repo, stored.digest, stored.format, as_type=bytes, allow_pickle=False)


def test_a_value_pickle_cannot_encode_is_an_invalid_argument(moto_repo: S3Repository) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot be pickled"):
        store_value(moto_repo, lambda: None)


class Boom:
    """Unpickling it would raise: a tampered pickle must never get that far."""

    def __reduce__(self) -> Any:
        return (_explode, ())


def _explode() -> None:
    raise AssertionError("a tampered pickle was unpickled")


def test_tampered_bytes_are_refused_before_they_are_used(repo: S3Repository) -> None:
    stored = store_value(repo, {"a": 1})
    evil = pickle.dumps(Boom(), protocol=PICKLE_PROTOCOL)
    key = repo.layout.object_key(stored.digest)
    head = repo.client.head_object(Bucket=repo.bucket, Key=key)
    repo.client.put_object(Bucket=repo.bucket, Key=key, Body=evil, Metadata=head["Metadata"])

    with pytest.raises(IntegrityError):
        load_value(repo, stored.digest, stored.format)


@pytest.mark.parametrize(
    ("value", "as_type"),
    [(b"raw", int), (pa.table({"a": [1]}), dict), (b"raw", Tree)],
)
def test_a_type_the_format_cannot_give_is_refused(
    moto_repo: S3Repository, value: object, as_type: type
) -> None:
    stored = store_value(moto_repo, value)
    with pytest.raises(InvalidArgumentError):
        load_value(moto_repo, stored.digest, stored.format, as_type=as_type)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_a_name_that_is_not_one_path_component_is_refused(
    moto_repo: S3Repository, tmp_path: Path, name: str
) -> None:
    digest = store_value(moto_repo, b"raw").digest
    with pytest.raises(InvalidArgumentError, match="one path component"):
        load_value(moto_repo, digest, "bytes", as_type=Path, name=name, work_dir=tmp_path)
    assert not (tmp_path / "escape").exists()


def test_an_unknown_format_is_refused(moto_repo: S3Repository) -> None:
    digest = store_value(moto_repo, b"raw").digest
    with pytest.raises(InvalidArgumentError, match="unknown value format"):
        load_value(moto_repo, digest, "yaml")


def test_digests_are_sha256_of_the_bytes(moto_repo: S3Repository) -> None:
    stored = store_value(moto_repo, b"abc")
    assert stored.digest.hex == hashlib.sha256(b"abc").hexdigest()
