"""Record manifests against every implementation: ``keep``, the promptness check, and
the race of records written while collections run.

A record's age does not hold a collection's threshold back (``s3repo_core.records``),
so these tests collect with thresholds of "now minus grace" while the objects the
records name are far older than that: only the records, and the writer's care to
write them promptly, keep those objects.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from contract_kit import Impl
from race_kit import run_race

from s3repo_core import (
    Digest,
    File,
    IntegrityError,
    NotExistError,
    plan_collection,
    write_manifest,
    write_record_manifest,
)
from s3repo_core._collect import Collector
from s3repo_core.records import record_deadline

REFRESH = timedelta(seconds=1)  # outlasts a pass of refreshes on a busy machine
SETTLE = timedelta(seconds=2)
GRACE = timedelta(seconds=5, milliseconds=500)
SECONDS = 12
ROUNDS = 3  # collections at least, however long they take
# keep acts on objects older than refresh_window; Last-Modified has whole seconds
KEEP_REFRESH = timedelta(seconds=1)
KEEP_AGE = 4


def age_of(impl: Impl, digest: Digest) -> float:
    repo = impl.repo
    found = repo.store.head(repo.layout.object_key(digest))  # type: ignore[attr-defined]
    return (repo.server_now() - found.modified).total_seconds()  # type: ignore[attr-defined]


# -- keep -----------------------------------------------------------------------------------


def test_keep_makes_old_objects_young_and_names_each_file_once(impl: Impl) -> None:
    repo = impl.make(refresh_window=KEEP_REFRESH)
    old, new = repo.put(b"old content"), repo.put(b"new content")
    impl.age(KEEP_AGE)  # older than refresh_window: keep must act
    files = repo.keep([old, File(new, len(b"new content")), str(old)])
    assert files == [File(old, len(b"old content")), File(new, len(b"new content"))]
    assert age_of(impl, old) < KEEP_AGE - 1  # refreshed, or named by a touch record


def test_keep_of_a_missing_object_is_not_exist_and_keeps_nothing(impl: Impl) -> None:
    repo = impl.make(refresh_window=KEEP_REFRESH)
    here = repo.put(b"here")
    impl.age(KEEP_AGE)
    missing = Digest.of(b"never stored")
    with pytest.raises(NotExistError) as caught:
        repo.keep([here, missing])
    assert caught.value.digest == missing
    assert age_of(impl, here) >= KEEP_AGE - 1  # not refreshed: the call failed before keeping


def test_keep_of_a_file_with_the_wrong_size_is_an_integrity_error(impl: Impl) -> None:
    digest = impl.repo.put(b"four")
    with pytest.raises(IntegrityError):
        impl.repo.keep([File(digest, 5)])


# -- the promptness check ----------------------------------------------------------------------


def test_a_record_written_late_keeps_its_objects_again_first(impl: Impl, tmp_path: Path) -> None:
    """A slow producer (a tree whose first files went in long ago): its objects are
    older than grace when its record is written, and a collection planned just before
    the record landed does not read it. The writer keeps them again, so that
    collection, whose threshold is now minus grace, spares them all the same."""
    repo = impl.make(refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    digests = [repo.put(f"tree file {i}".encode()) for i in range(3)]
    files = [repo.stat(digest) for digest in digests]
    impl.age(GRACE.total_seconds() + 3)
    garbage = repo.put(b"named by nothing")
    write_manifest(tmp_path / "older.parquet", [], kind="record")
    impl.age(GRACE.total_seconds() + 3)
    plan = plan_collection(repo, [tmp_path])  # planned before the record lands
    lateness: list[str] = []
    started = time.monotonic() - record_deadline(repo) - 1  # the first store, long ago
    write_record_manifest(
        repo,
        tmp_path / "slow-tree.parquet",
        files,
        started=started,
        source="slow tree",
        on_late=lateness.append,
    )
    assert len(lateness) == 1 and "kept again before the record" in lateness[0]
    assert len(plan.read_liveset()) == 0
    report = repo.collect(plan.read_liveset(), threshold=plan.threshold)
    assert report.collected == 1
    for digest in digests:
        repo.stat(digest)
    with pytest.raises(NotExistError):
        repo.stat(garbage)


def test_a_prompt_record_keeps_nothing_again(impl: Impl, tmp_path: Path) -> None:
    repo = impl.make(refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    started = time.monotonic()
    file = repo.stat(repo.put(b"prompt"))
    lateness: list[str] = []
    info = write_record_manifest(
        repo, tmp_path / "r.parquet", [file], started=started, source="s", on_late=lateness.append
    )
    assert lateness == []
    assert (info.kind, info.num_rows) == ("record", 1)


def test_only_records_means_a_threshold_of_now_minus_grace(impl: Impl, tmp_path: Path) -> None:
    repo = impl.make(refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    file = repo.stat(repo.put(b"recorded"))
    write_manifest(
        tmp_path / "months-old.parquet",
        [(file.digest, file.size, "x")],
        kind="record",
        created_at=repo.server_now() - timedelta(days=90),  # type: ignore[attr-defined]
    )
    before = repo.server_now()  # type: ignore[attr-defined]
    plan = plan_collection(repo, [tmp_path])
    assert (
        before - GRACE - timedelta(seconds=1)
        <= plan.threshold
        <= before - GRACE + timedelta(seconds=5)
    )
    # With the record taken for a snapshot, the threshold would be 90 days back.
    snapshot = tmp_path / "snapshot.parquet"
    write_manifest(snapshot, [], created_at=before - timedelta(hours=1))
    assert plan_collection(repo, [tmp_path]).threshold == (
        before - timedelta(hours=1) - GRACE
    ).replace(microsecond=0)


# -- the race ---------------------------------------------------------------------------------


@pytest.mark.parametrize("touch_records", [False, True], ids=["refresh-each", "touch-records"])
def test_records_written_while_collections_run_keep_their_objects(
    impl: Impl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, touch_records: bool
) -> None:
    """Writers store content from a pool of garbage and record it, some promptly, some
    past the deadline (a slow producer); collections planned from the records alone run
    back to back. No object a record names may vanish; a writer whose objects went
    before it could keep them is told so with NotExistError."""
    monkeypatch.setattr(Collector, "pause_before_delete", 0.4)
    repo = impl.make(refresh_window=REFRESH, settle=SETTLE, grace=GRACE)
    if touch_records:
        repo.enable_touch_records()
    records = tmp_path / "records"
    records.mkdir()
    pool = [f"pool item {i}".encode() for i in range(30)]
    paths = []
    for i, data in enumerate(pool):
        paths.append(tmp_path / f"item-{i}")
        paths[-1].write_bytes(data)
        repo.put(data)
    seed = repo.stat(repo.put(b"the first record's"))
    write_record_manifest(
        repo, records / "seed.parquet", [seed], started=time.monotonic(), source="seed"
    )
    impl.age(GRACE.total_seconds() + 2.5)
    deadline_s = record_deadline(repo)

    named: set[Digest] = {seed.digest}
    lock = threading.Lock()
    late, refused = [0], [0]

    def write_once(seed: int, rng: random.Random) -> None:
        started = time.monotonic()
        if seed % 2:
            files = repo.put_files(rng.sample(paths, 3))
        else:
            files = [repo.stat(repo.put(pool[rng.randrange(len(pool))]))]
        if rng.random() < 0.3:  # a slow producer: the record comes late
            time.sleep(deadline_s + 1.5 + 2 * rng.random())
        try:
            write_record_manifest(
                repo,
                records / f"{uuid.uuid4().hex}.parquet",
                files,
                started=started,
                source=f"writer {seed}",
                on_late=lambda _why: late.__setitem__(0, late[0] + 1),
            )
        except NotExistError:
            # Too late: a collection took an object before the record could keep it,
            # and the writer is told so. It is not an object lost silently: no record
            # was promised, and the writer may store again.
            refused[0] += 1
            return
        with lock:
            named.update(file.digest for file in files)

    def collect_once() -> int:
        plan = plan_collection(repo, [records])
        return repo.collect(plan.read_liveset(), threshold=plan.threshold).collected

    def protected(_started: float) -> list[Digest]:
        with lock:  # every digest a written record names, for as long as records exist
            return list(named)

    race = run_race(
        repo,
        write_once,
        seconds=SECONDS,
        rounds=ROUNDS,
        collect_once=collect_once,
        protected=protected,
    )
    assert not race.errors, race.errors
    assert race.violations == []
    assert race.rounds >= ROUNDS, f"{race.rounds} collections"
    assert race.collected > 0  # records only: garbage no record names does go
    assert late[0] > 0  # some records were late, and their objects were kept again
