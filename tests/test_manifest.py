"""Liveset manifests: Parquet round trips, strict validation, fail-closed liveset reads."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devkit.localserver import LocalS3
from s3repo_core import read_liveset, read_liveset_with_info
from s3repo_core._client import make_client, set_client
from s3repo_core._digest import Digest
from s3repo_core._errors import (
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    UnavailableError,
)
from s3repo_core.liveset import BloomLiveset, ExactLiveset, digests_to_array
from s3repo_core.manifest import (
    BATCH_ROWS,
    ManifestInfo,
    ManifestRow,
    check_manifest_location,
    read_manifest,
    read_manifest_infos,
    write_manifest,
)

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
GOOD_METADATA = {
    b"s3repo.manifest": b"1",
    b"s3repo.created_at": b"2024-05-06T07:08:09+00:00",
    b"s3repo.created_by": b"another-tool",
}


def by_digest(rows: list[ManifestRow]) -> list[ManifestRow]:
    """How a manifest holds ``rows``: sorted by digest (equal ones in their order)."""
    return sorted(rows, key=lambda row: row.digest.raw)


def rows(n: int, seed: str = "") -> list[ManifestRow]:
    return [ManifestRow(Digest.of(f"{seed}{i}".encode()), i * 10, f"job-{i % 3}") for i in range(n)]


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def server(moto_server: LocalS3) -> LocalS3:
    """The session's moto server (these tests are about our code, not the server)."""
    return moto_server


@pytest.fixture
def bucket(server: LocalS3) -> Iterator[str]:
    name = server.create_bucket()
    set_client(server.client(), bucket=name)
    yield name
    set_client(None, bucket=name)


@pytest.fixture
def s3(server: LocalS3) -> Any:
    return server.client()


# -- writing and reading one manifest -------------------------------------------------


def test_local_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "live.parquet"
    written = rows(100)
    info = write_manifest(dest, written, created_by="nightly-ingest", created_at=WHEN)
    assert info.location == str(dest)
    assert (info.num_rows, info.created_at, info.created_by) == (100, WHEN, "nightly-ingest")

    manifest = read_manifest(dest)
    assert list(manifest) == by_digest(written)
    assert manifest.num_rows == len(manifest) == 100
    assert manifest.created_at == WHEN
    assert manifest.created_by == "nightly-ingest"
    assert [d.tobytes() for d in manifest.digests()] == [r.digest.raw for r in by_digest(written)]
    assert no_temp_files(tmp_path)


def test_the_file_is_compact_parquet_with_metadata(tmp_path: Path) -> None:
    dest = tmp_path / "live.parquet"
    write_manifest(dest, rows(10), created_by="me", created_at=WHEN)
    pf = pq.ParquetFile(dest)
    schema = pf.schema_arrow
    assert schema.field("digest").type == pa.binary(32)
    assert schema.field("size").type == pa.int64()
    assert schema.field("source").type == pa.string()
    meta = pf.metadata.metadata
    assert meta[b"s3repo.manifest"] == b"1"
    assert meta[b"s3repo.created_by"] == b"me"
    assert datetime.fromisoformat(meta[b"s3repo.created_at"].decode()) == WHEN


def test_tuples_are_rows_and_created_at_is_stored_in_utc(tmp_path: Path) -> None:
    d = Digest.of(b"x")
    local = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    info = write_manifest(tmp_path / "m.parquet", [(d, 1, "t")], created_at=local)
    manifest = read_manifest(tmp_path / "m.parquet")
    assert list(manifest) == [ManifestRow(d, 1, "t")]
    assert manifest.created_at == local
    assert manifest.created_at.utcoffset() == timedelta(0)
    assert info.created_at.tzinfo is UTC


def test_created_at_defaults_to_now(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    info = write_manifest(tmp_path / "m.parquet", rows(1))
    after = datetime.now(UTC)
    assert before <= info.created_at <= after
    assert read_manifest(tmp_path / "m.parquet").created_at == info.created_at


def test_empty_manifest(tmp_path: Path) -> None:
    info = write_manifest(tmp_path / "m.parquet", [], created_at=WHEN)
    assert info.num_rows == 0
    manifest = read_manifest(tmp_path / "m.parquet")
    assert list(manifest) == []
    live = read_liveset(tmp_path / "m.parquet")
    assert len(live) == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((Digest.of(b"x"), -1, "s"), "row 3: size"),
        (("sha256:" + "0" * 64, 1, "s"), "row 3: digest must be a Digest"),
        ((Digest.of(b"x"), 1, None), "row 3: source"),
        ((Digest.of(b"x"), 1), "row 3: expected a ManifestRow"),
        ("nonsense", "row 3: expected a ManifestRow"),
    ],
)
def test_write_rejects_a_bad_row_and_leaves_nothing(tmp_path: Path, bad: Any, message: str) -> None:
    dest = tmp_path / "m.parquet"
    with pytest.raises(InvalidArgumentError, match=message):
        write_manifest(dest, [*rows(3), bad])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_manifest(tmp_path: Path) -> None:
    dest = tmp_path / "m.parquet"
    write_manifest(dest, rows(5), created_at=WHEN)

    def exploding() -> Iterator[ManifestRow]:
        yield from rows(BATCH_ROWS + 10, seed="new")  # a row group is already written
        raise RuntimeError("the producer died")

    with pytest.raises(RuntimeError, match="producer died"):
        write_manifest(dest, exploding())
    assert list(read_manifest(dest)) == by_digest(rows(5))
    assert no_temp_files(tmp_path)


def test_write_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="timezone-aware"):
        write_manifest(tmp_path / "m.parquet", rows(1), created_at=datetime(2024, 1, 1))
    with pytest.raises(InvalidArgumentError, match="created_by"):
        write_manifest(tmp_path / "m.parquet", rows(1), created_by="")
    with pytest.raises(InvalidArgumentError, match="directory"):
        write_manifest(tmp_path, rows(1))
    with pytest.raises(NotExistError):
        write_manifest(tmp_path / "no" / "such" / "m.parquet", rows(1))
    with pytest.raises(NotSupportedError):
        write_manifest("gs://bucket/m.parquet", rows(1))
    assert list(tmp_path.iterdir()) == []


# -- S3 -------------------------------------------------------------------------------


def test_s3_round_trip(bucket: str, s3: Any) -> None:
    url = f"s3://{bucket}/manifests/live.parquet"
    written = rows(1000)
    info = write_manifest(url, written, created_by="ingest", created_at=WHEN)
    assert info.location == url and info.num_rows == 1000
    head = s3.head_object(Bucket=bucket, Key="manifests/live.parquet")
    assert head["ContentLength"] > 1000 * 32

    manifest = read_manifest(url)
    assert list(manifest) == by_digest(written)
    assert (manifest.created_at, manifest.created_by) == (WHEN, "ingest")


def test_reading_what_s3_manifests_are_fetches_only_their_footers(bucket: str, s3: Any) -> None:
    """Retention reads every record's footer at each collection: one GET of the last
    bytes each, however many rows the manifest holds."""
    big = write_manifest(
        f"s3://{bucket}/records/big.parquet", rows(120_000), kind="record", labels={"a": "b"}
    )
    small = write_manifest(f"s3://{bucket}/records/small.parquet", rows(3), created_at=WHEN)
    size = s3.head_object(Bucket=bucket, Key="records/big.parquet")["ContentLength"]
    assert size > 4 * 1024 * 1024  # far more than one footer read
    ranges: list[str] = []
    s3.meta.events.register(
        "before-call.s3.GetObject",
        lambda params, **_: ranges.append(params["headers"].get("Range", "")),
    )
    infos = read_manifest_infos(f"s3://{bucket}/records/", client=s3)
    assert infos == [big, small]
    assert ranges == ["bytes=-262144", "bytes=-262144"]
    with pytest.raises(NotExistError):
        read_manifest_infos(f"s3://{bucket}/records/absent.parquet", client=s3)
    s3.put_object(Bucket=bucket, Key="records/empty.parquet", Body=b"")
    with pytest.raises(InvalidArgumentError, match="not a readable Parquet file"):
        read_manifest_infos(f"s3://{bucket}/records/empty.parquet", client=s3)


def test_failed_s3_write_leaves_no_object(bucket: str, s3: Any) -> None:
    def exploding() -> Iterator[ManifestRow]:
        yield from rows(10)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_manifest(f"s3://{bucket}/m.parquet", exploding())
    with pytest.raises(InvalidArgumentError):
        write_manifest(f"s3://{bucket}/m.parquet", [*rows(2), (Digest.of(b"x"), -5, "")])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_missing_s3_key_and_bucket_are_not_exist(bucket: str, server: LocalS3) -> None:
    with pytest.raises(NotExistError):
        read_manifest(f"s3://{bucket}/no/such.parquet")
    with pytest.raises(NotExistError):
        read_liveset(f"s3://{bucket}/no/such.parquet")
    missing = "no-such-bucket-s3repo"
    set_client(server.client(), bucket=missing)
    try:
        with pytest.raises(NotExistError):
            write_manifest(f"s3://{missing}/m.parquet", rows(1))
    finally:
        set_client(None, bucket=missing)


@pytest.mark.parametrize(
    ("key", "area"),
    [
        (f"some/prefix/objects/{Digest.of(b'x')}", "objects"),
        ("objects/live.parquet", "objects"),
        ("some/prefix/uploads/0123456789abcdef", "uploads"),
        ("p/collections/live.parquet", "collections"),
        ("p/touches/x/live.parquet", "touches"),
        ("deep/er/quarantine/live.parquet", "quarantine"),
        ("manifests/objects/live.parquet", "objects"),  # "manifests" may be a prefix too
    ],
)
def test_a_manifest_is_never_written_into_a_repository_s_key_space(
    bucket: str, s3: Any, key: str, area: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=f"inside the {area}/ area of a repository"):
        write_manifest(f"s3://{bucket}/{key}", rows(3))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(InvalidArgumentError):
        check_manifest_location(f"s3://{bucket}/{key}")


@pytest.mark.parametrize(
    "key",
    [
        "manifests/live.parquet",
        "objects",  # a key named like an area, not under one
        "some/prefix/objects.parquet",
        "my-objects/live.parquet",
        "objects-2024/live.parquet",
        "Objects/live.parquet",  # keys are case-sensitive: not our area
        "reports/uploads.d/live.parquet",
    ],
)
def test_other_manifest_keys_are_fine(bucket: str, key: str) -> None:
    url = f"s3://{bucket}/{key}"
    assert write_manifest(url, rows(2)).location == url
    assert list(read_manifest(url)) == by_digest(rows(2))


def test_a_local_path_is_not_an_s3_key_and_is_not_checked(tmp_path: Path) -> None:
    dest = tmp_path / "objects" / "live.parquet"
    dest.parent.mkdir()
    write_manifest(dest, rows(2))
    assert list(read_manifest(dest)) == by_digest(rows(2))


# -- validation when reading ----------------------------------------------------------


def write_raw(path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> Path:
    """A Parquet file written by 'another tool', with our metadata unless told otherwise."""
    pq.write_table(
        table.replace_schema_metadata(GOOD_METADATA if metadata is None else metadata), path
    )
    return path


def string_table(texts: list[str | None], sizes: list[int | None] | None = None) -> pa.Table:
    return pa.table(
        {
            "digest": pa.array(texts, pa.string()),
            "size": pa.array(sizes or [1] * len(texts), pa.int64()),
            "source": pa.array(["other"] * len(texts), pa.string()),
        }
    )


def test_string_digests_from_another_tool_are_accepted(tmp_path: Path) -> None:
    ds = [Digest.of(str(i).encode()) for i in range(20)]
    path = write_raw(tmp_path / "m.parquet", string_table([str(d) for d in ds]))
    manifest = read_manifest(path)
    assert [r.digest for r in manifest] == ds
    assert manifest.created_by == "another-tool"
    assert manifest.created_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    live = read_liveset(path)
    assert all(d in live for d in ds)


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:" + "A" * 64,  # uppercase
        "sha256:" + "0" * 63,  # short
        "sha256:" + "0" * 65,  # long
        "sha512:" + "0" * 64,
        "0" * 71,
        "sha256:" + "0" * 63 + "g",
        " sha256:" + "0" * 64,
        "sha256:" + "0" * 64 + "\n",
        "",
    ],
)
def test_a_malformed_string_digest_is_rejected_with_its_row_number(
    tmp_path: Path, bad: str
) -> None:
    texts = [str(Digest.of(str(i).encode())) for i in range(12)]
    texts[7] = bad
    path = write_raw(tmp_path / "m.parquet", string_table(texts))
    with pytest.raises(InvalidArgumentError, match=r"row 7\b"):
        read_manifest(path)
    with pytest.raises(InvalidArgumentError, match=r"row 7\b"):
        read_liveset(path)


def test_row_numbers_count_across_batches(tmp_path: Path) -> None:
    n = BATCH_ROWS + 100
    texts: list[str | None] = [str(Digest.of(str(i).encode())) for i in range(n)]
    texts[BATCH_ROWS + 42] = "sha256:nope"
    path = write_raw(tmp_path / "m.parquet", string_table(texts))
    with pytest.raises(InvalidArgumentError, match=f"row {BATCH_ROWS + 42}\\b"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (
            "digest",
            [b"\x01" * 32] * 4 + [b"\x02" * 31] + [b"\x03" * 32],
            "row 4: digest is 31 bytes",
        ),
        ("digest", [b"\x01" * 32] * 4 + [None] + [b"\x03" * 32], "row 4: digest is null"),
        ("size", [1, 2, 3, 4, -9, 6], "row 4: size -9 is negative"),
        ("size", [1, 2, 3, 4, None, 6], "row 4: size is null"),
        ("source", ["a", "b", "c", "d", None, "f"], "row 4: source is null"),
    ],
)
def test_bad_rows_are_rejected_with_their_number(
    tmp_path: Path, column: str, values: list[Any], message: str
) -> None:
    columns: dict[str, Any] = {
        "digest": pa.array([bytes([i]) * 32 for i in range(6)], pa.binary()),
        "size": pa.array(range(6), pa.int64()),
        "source": pa.array(["s"] * 6),
    }
    columns[column] = pa.array(values, columns[column].type)
    path = write_raw(tmp_path / "m.parquet", pa.table(columns))
    with pytest.raises(InvalidArgumentError, match=message):
        read_manifest(path)


def test_variable_binary_digests_of_32_bytes_are_accepted(tmp_path: Path) -> None:
    ds = [Digest.of(str(i).encode()) for i in range(5)]
    table = pa.table({"digest": pa.array([d.raw for d in ds], pa.large_binary()), "size": [0] * 5})
    manifest = read_manifest(write_raw(tmp_path / "m.parquet", table))
    assert [r.digest for r in manifest] == ds
    assert [r.source for r in manifest] == [""] * 5  # the source column is optional


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "not an s3repo manifest"),
        ({**GOOD_METADATA, b"s3repo.manifest": b"2"}, "unsupported format version"),
        ({**GOOD_METADATA, b"s3repo.created_at": b"yesterday"}, "created_at"),
        ({**GOOD_METADATA, b"s3repo.created_at": b"2024-05-06T07:08:09"}, "created_at"),
        ({b"s3repo.manifest": b"1", b"s3repo.created_at": b"2024-05-06T07:08:09Z"}, "created_by"),
    ],
)
def test_the_metadata_marker_and_creation_time_are_required(
    tmp_path: Path, metadata: dict[bytes, bytes], message: str
) -> None:
    table = string_table([str(Digest.of(b"x"))])
    path = write_raw(tmp_path / "m.parquet", table, metadata)
    with pytest.raises(InvalidArgumentError, match=message):
        read_manifest(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"size": [1]}), "no 'digest' column"),
        (pa.table({"digest": [str(Digest.of(b"x"))]}), "no 'size' column"),
        (pa.table({"digest": pa.array([b"x" * 16], pa.binary(16)), "size": [1]}), "digest column"),
        (pa.table({"digest": [str(Digest.of(b"x"))], "size": ["1"]}), "size column"),
        (pa.table({"digest": [str(Digest.of(b"x"))], "size": [1], "source": [1]}), "source"),
        (
            pa.Table.from_arrays(
                [pa.array([str(Digest.of(b"x"))]), pa.array([1]), pa.array([2])],
                names=["digest", "size", "size"],
            ),
            "two 'size' columns",
        ),
    ],
)
def test_the_schema_is_checked(tmp_path: Path, table: pa.Table, message: str) -> None:
    path = write_raw(tmp_path / "m.parquet", table)
    with pytest.raises(InvalidArgumentError, match=message):
        read_manifest(path)


def test_a_file_that_is_not_parquet_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    path.write_text("digest,size\nsha256:00,1\n")
    with pytest.raises(InvalidArgumentError, match="not a readable Parquet file"):
        read_manifest(path)
    path.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="not a readable Parquet file"):
        read_manifest(path)


def test_a_flipped_bit_in_a_page_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    write_manifest(path, rows(1000), created_at=WHEN)
    data = bytearray(path.read_bytes())
    data[len(data) // 4] ^= 0x01  # inside the digest column's data page
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidArgumentError, match="corrupt"):
        read_manifest(path)


def test_a_missing_local_file_is_not_exist(tmp_path: Path) -> None:
    with pytest.raises(NotExistError):
        read_manifest(tmp_path / "nope.parquet")
    with pytest.raises(NotExistError):
        read_liveset([tmp_path / "nope.parquet"])
    with pytest.raises(InvalidArgumentError, match="directory"):
        read_manifest(tmp_path)


# -- read_liveset ---------------------------------------------------------------------


def make_manifests(n: int, per: int) -> list[list[ManifestRow]]:
    """n manifests of ``per`` rows that overlap by half with their neighbour."""
    return [rows(per, seed="x")[: per // 2] + rows(per - per // 2, seed=f"m{i}") for i in range(n)]


def expected_union(manifests: list[list[ManifestRow]]) -> set[Digest]:
    return {r.digest for m in manifests for r in m}


def test_read_liveset_over_a_directory_is_the_union(tmp_path: Path) -> None:
    manifests = make_manifests(4, 200)
    (tmp_path / "nested").mkdir()
    for i, m in enumerate(manifests):
        where = tmp_path / "nested" if i % 2 else tmp_path
        write_manifest(where / f"m{i}.parquet", m, created_at=WHEN + timedelta(hours=i))
    (tmp_path / "README.txt").write_text("not a manifest, and not read")

    live, info = read_liveset_with_info(tmp_path)
    assert isinstance(live, ExactLiveset)
    assert set(live) == expected_union(manifests)
    assert len(info.manifests) == 4 and info.num_rows == 800
    assert info.oldest_created_at == WHEN
    assert info.newest_created_at == WHEN + timedelta(hours=3)
    written_at = {f"m{i}.parquet": WHEN + timedelta(hours=i) for i in range(4)}
    assert info.per_manifest == tuple(
        ManifestInfo(location, 200, written_at[Path(location).name], "s3repo")
        for location in info.manifests
    )

    outsiders = [Digest.of(b"outsider-%d" % i) for i in range(100)]
    bloom = read_liveset(f"{tmp_path}/", kind="bloom")
    assert isinstance(bloom, BloomLiveset)
    assert bloom.contains_many(digests_to_array(expected_union(manifests))).all()
    assert bloom.count == 800
    assert sum(d in bloom for d in outsiders) < 10


def test_read_liveset_over_an_s3_prefix_and_a_mix(bucket: str, tmp_path: Path) -> None:
    manifests = make_manifests(3, 300)
    for i, m in enumerate(manifests):
        write_manifest(f"s3://{bucket}/live/m{i}.parquet", m, created_at=WHEN)
    extra = rows(50, seed="local")
    write_manifest(tmp_path / "local.parquet", extra, created_at=WHEN - timedelta(days=1))
    write_manifest(f"s3://{bucket}/elsewhere/x.parquet", rows(5, seed="z"), created_at=WHEN)

    live = read_liveset(f"s3://{bucket}/live/")
    assert set(live) == expected_union(manifests)

    mixed, info = read_liveset_with_info(
        [f"s3://{bucket}/live/", str(tmp_path / "local.parquet")], kind="exact"
    )
    assert set(mixed) == expected_union([*manifests, extra])
    assert info.oldest_created_at == WHEN - timedelta(days=1)
    assert info.manifests[-1] == str(tmp_path / "local.parquet")

    bloom = read_liveset([f"s3://{bucket}/live/m0.parquet"], kind="bloom", fp_rate=0.001)
    assert bloom.contains_many(digests_to_array(expected_union(manifests[:1]))).all()


def test_each_manifest_read_is_described_for_either_kind_of_liveset(tmp_path: Path) -> None:
    write_manifest(tmp_path / "a.parquet", rows(3), created_by="first", created_at=WHEN)
    later = WHEN + timedelta(minutes=1)
    write_manifest(tmp_path / "b.parquet", rows(5, seed="b"), created_by="second", created_at=later)
    expected = (
        ManifestInfo(str(tmp_path / "a.parquet"), 3, WHEN, "first"),
        ManifestInfo(str(tmp_path / "b.parquet"), 5, later, "second"),
    )
    for kind in ("exact", "bloom"):
        _, info = read_liveset_with_info(tmp_path, kind=kind)  # type: ignore[arg-type]
        assert info.per_manifest == expected
        assert info.manifests == tuple(m.location for m in expected)


# -- which client reads and writes s3:// ------------------------------------------------------


def dead_client() -> Any:
    """A client for an endpoint nobody listens on: it fails at once if it is used."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return make_client(
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key_id="nobody",
        secret_access_key="nothing",
        max_attempts=1,
        connect_timeout=1.0,
    )


def test_the_client_given_is_used_for_every_s3_access_not_the_one_set(bucket: str, s3: Any) -> None:
    set_client(dead_client(), bucket=bucket)  # the fixture removes it afterwards
    url = f"s3://{bucket}/live/m.parquet"

    info = write_manifest(url, rows(4), created_at=WHEN, client=s3)
    assert info.location == url
    assert list(read_manifest(url, client=s3)) == by_digest(rows(4))
    assert set(read_liveset(f"s3://{bucket}/live/", client=s3)) == {r.digest for r in rows(4)}
    _, read = read_liveset_with_info([f"s3://{bucket}/live/"], kind="bloom", client=s3)
    assert read.per_manifest == (ManifestInfo(url, 4, WHEN, "s3repo"),)

    # Without one, the client set for the bucket is used, as before: here, a dead one.
    for call in (
        lambda: read_manifest(url),
        lambda: read_liveset(f"s3://{bucket}/live/"),
        lambda: write_manifest(f"s3://{bucket}/live/n.parquet", rows(1)),
    ):
        with pytest.raises(UnavailableError):
            call()


def test_with_no_client_set_the_default_is_built_from_the_environment_and_rebuilt_when_reset(
    bucket: str, server: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{bucket}/m.parquet"
    write_manifest(url, rows(2))
    set_client(None, bucket=bucket)  # the fixture's: from here on, only the default
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    set_client(None)
    try:
        assert len(read_manifest(url)) == 2  # built once, from AWS_ENDPOINT_URL_S3
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{sock.getsockname()[1]}")
        assert len(read_manifest(url)) == 2  # the same default: built once, then shared
        set_client(None)  # forgets it: the next is built from the changed environment
        with pytest.raises(UnavailableError):
            read_manifest(url)
    finally:
        set_client(None)


def test_local_manifests_need_no_client(tmp_path: Path) -> None:
    dead = dead_client()
    write_manifest(tmp_path / "m.parquet", rows(2), client=dead)
    assert len(read_manifest(tmp_path / "m.parquet", client=dead)) == 2
    assert len(read_liveset(tmp_path, client=dead)) == 2


def corrupt_copy(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    return bytes(data[: len(data) // 2])  # truncated: the footer is gone


def test_read_liveset_fails_closed_on_one_bad_manifest(tmp_path: Path) -> None:
    for i, m in enumerate(make_manifests(3, 100)):
        write_manifest(tmp_path / f"m{i}.parquet", m)
    (tmp_path / "m3.parquet").write_bytes(corrupt_copy(tmp_path / "m0.parquet"))
    for kind in ("exact", "bloom"):
        with pytest.raises(InvalidArgumentError, match=r"m3\.parquet"):
            read_liveset(tmp_path, kind=kind)  # type: ignore[arg-type]

    # A bad row in the last manifest, far into the file, fails the whole read too.
    (tmp_path / "m3.parquet").unlink()
    texts = [str(Digest.of(str(i).encode())) for i in range(1000)]
    texts[999] = "sha256:bad"
    write_raw(tmp_path / "m4.parquet", string_table(texts))
    for kind in ("exact", "bloom"):
        with pytest.raises(InvalidArgumentError, match="row 999"):
            read_liveset(tmp_path, kind=kind)  # type: ignore[arg-type]


def test_read_liveset_fails_closed_on_s3(bucket: str, s3: Any, tmp_path: Path) -> None:
    for i, m in enumerate(make_manifests(2, 100)):
        write_manifest(f"s3://{bucket}/live/m{i}.parquet", m)
    s3.put_object(Bucket=bucket, Key="live/zz.parquet", Body=b"PAR1 this is not parquet")
    with pytest.raises(InvalidArgumentError, match=r"zz\.parquet"):
        read_liveset(f"s3://{bucket}/live/")
    with pytest.raises(NotExistError):
        read_liveset([f"s3://{bucket}/live/m0.parquet", f"s3://{bucket}/live/gone.parquet"])


def test_an_empty_directory_or_prefix_is_an_error_not_an_empty_liveset(
    tmp_path: Path, bucket: str
) -> None:
    with pytest.raises(NotExistError, match="no manifests"):
        read_liveset(tmp_path)
    with pytest.raises(NotExistError, match="no manifests"):
        read_liveset(f"s3://{bucket}/nothing/here/")
    with pytest.raises(InvalidArgumentError):
        read_liveset([])
    with pytest.raises(InvalidArgumentError):
        read_liveset(tmp_path, kind="fuzzy")  # type: ignore[arg-type]


def test_a_large_manifest_streams_in_row_groups(tmp_path: Path) -> None:
    n = 300_000
    raw = np.random.default_rng(1).bytes(32 * n)
    digests = [Digest(raw[i : i + 32]) for i in range(0, len(raw), 32)]
    path = tmp_path / "big.parquet"
    info = write_manifest(path, ((d, 7, "bulk") for d in digests), created_at=WHEN)
    assert info.num_rows == n
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-n // BATCH_ROWS)

    live = read_liveset(path)
    assert len(live) == n
    query = np.concatenate(
        [
            digests_to_array(digests[::1000]),
            digests_to_array(r.digest for r in rows(300, seed="absent")),
        ]
    )
    assert live.contains_many(query).tolist() == [True] * 300 + [False] * 300
    bloom = read_liveset(path, kind="bloom")
    assert bloom.contains_many(digests_to_array(digests)).all()
    assert os.path.getsize(path) < 40 * n  # fixed-size binary, not hex strings


def test_an_s3_folder_gives_its_parquet_files_and_a_key_gives_only_itself(
    bucket: str, s3: Any
) -> None:
    from s3repo_core.compaction import records_modified_since

    first, second = rows(3, "first"), rows(2, "second")
    write_manifest(f"s3://{bucket}/m/a.parquet", first, created_at=WHEN)
    write_manifest(f"s3://{bucket}/m/a.parquet.old", second, created_at=WHEN)  # not *.parquet
    s3.put_object(Bucket=bucket, Key="m/notes.txt", Body=b"not a manifest")
    assert len(read_liveset(f"s3://{bucket}/m/")) == len(first)
    long_ago = WHEN - timedelta(days=365 * 100)
    assert records_modified_since(f"s3://{bucket}/m/", long_ago) == [f"s3://{bucket}/m/a.parquet"]
    # A key is itself, not every key it begins.
    assert records_modified_since(f"s3://{bucket}/m/a.parquet", long_ago) == [
        f"s3://{bucket}/m/a.parquet"
    ]
