"""``DirectoryStore``: the ``Store`` protocol on a local directory (``file://`` repositories).

Keys are files under the root; writes are published by rename, so a key is whole or
absent; listings walk only the directory a prefix names, in S3's key order; every
OSError becomes the library's error. No server is needed: every test uses ``tmp_path``.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from s3repo_core import (
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    PermissionDeniedError,
    RepositoryError,
    UnavailableError,
    _directory,
)
from s3repo_core._directory import TEMP_DIR, DirectoryStore, translate_os_error
from s3repo_core._store import Page, PendingUpload, Store

REPO = Path(__file__).resolve().parents[1]

# Keys whose order a directory walk could get wrong: names sorting just below '/'
# (' ', '!', '-', '.'), just above it ('0', ':'), a directory beside files that extend
# its name, and non-ASCII, including a character beyond the BMP (UTF-16 order differs).
ORDER_KEYS = [
    "a b",
    "a!",
    "a-b",
    "a.c",
    "a/b",
    "a/c-",
    "a/c.x",
    "a/c/d",
    "a/c/e/f",
    "a/c0",
    "a/c:",
    "a/é",
    "a0",
    "a:b",
    "a:/x",
    "b",
    "objects/sha256:ab",
    "objects/sha256:abc",
    "objects/sha256:b",
    "objects-old/x",
    "z",
    "é/x",
    "éa",
    "日本/語",
    "\uff61",
    "\U0001f600/x",
]

BAD_KEYS = [
    "",
    "/abs",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "a/..",
    "../escape",
    "a/../../escape",
    "nul\0byte",
    "back\\slash",
    f"{TEMP_DIR}/x",
    "lone\udc80surrogate",
]

needs_non_root = pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores file permissions, so nothing is refused"
)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path)


def fill(store: DirectoryStore, keys: list[str]) -> None:
    for key in keys:
        store.put(key, key.encode())


def listed(store: DirectoryStore, prefix: str = "", start_after: str = "", **kw: Any) -> list[str]:
    return [item.key for page in store.list_pages(prefix, start_after, **kw) for item in page.items]


def is_key(store: DirectoryStore, key: str) -> bool:
    try:
        store.path_of(key)
    except InvalidArgumentError:
        return False
    return True


def visible_files(root: Path) -> list[str]:
    """Every file under ``root`` outside the temp directory, as keys."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and TEMP_DIR not in p.parts
    )


def temp_files(root: Path) -> list[Path]:
    temp = root / TEMP_DIR
    return sorted(temp.iterdir()) if temp.exists() else []


def test_it_is_a_store(tmp_path: Path) -> None:
    _: Store = DirectoryStore(tmp_path)  # mypy checks the protocol here


# -- the root -------------------------------------------------------------------------


def test_a_missing_root_is_not_exist_and_named(tmp_path: Path) -> None:
    with pytest.raises(NotExistError, match=re.escape(str(tmp_path / "nope"))):
        DirectoryStore(tmp_path / "nope")


def test_a_root_that_is_a_file_is_not_exist_and_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotExistError, match="is not a directory"):
        DirectoryStore(tmp_path / "file")


def test_where_names_the_file_by_url(tmp_path: Path) -> None:
    store = DirectoryStore(str(tmp_path))
    assert store.where("objects/x") == f"file://{tmp_path}/objects/x"
    assert store.path_of("objects/x") == tmp_path / "objects" / "x"


# -- reading and writing --------------------------------------------------------------


def test_round_trip(store: DirectoryStore, tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.put("p/objects/sha256:ab", b"hello", {"sha256": "ignored"})
    assert store.read("p/objects/sha256:ab") == b"hello"
    assert (tmp_path / "p" / "objects" / "sha256:ab").read_bytes() == b"hello"
    st = store.head("p/objects/sha256:ab")
    assert st is not None
    assert (st.key, st.size, st.etag) == ("p/objects/sha256:ab", 5, None)
    assert before <= st.modified <= st.now <= datetime.now(UTC)
    assert st.modified.tzinfo is UTC and st.now.tzinfo is UTC

    store.put("p/objects/sha256:ab", b"replaced")
    assert store.read("p/objects/sha256:ab") == b"replaced"
    assert temp_files(tmp_path) == []


def test_an_empty_value_is_a_key(store: DirectoryStore) -> None:
    store.put("empty", b"")
    assert store.read("empty") == b""
    assert listed(store) == ["empty"]


def test_head_and_read_of_missing_keys(store: DirectoryStore) -> None:
    store.put("file", b"x")
    assert store.head("missing") is None
    assert store.head("no/such/dir") is None
    assert store.head("file/under-a-file") is None
    for key in ("missing", "file/under-a-file"):
        with pytest.raises(NotExistError, match=key):
            store.read(key)


def test_a_directory_is_not_an_object(store: DirectoryStore) -> None:
    store.put("dir/key", b"x")
    assert store.head("dir") is None
    with pytest.raises(NotExistError):
        store.read("dir")
    assert store.touch("dir") is False
    store.delete("dir")  # no such key: nothing to do
    assert store.read("dir/key") == b"x"


def test_open_reads_and_seeks(store: DirectoryStore) -> None:
    store.put("k", b"0123456789")
    with store.open("k") as file:
        assert file.read(3) == b"012"
        file.seek(7)
        assert file.read() == b"789"
    with pytest.raises(NotExistError):
        store.open("missing")


def test_reads_of_an_open_file_raise_the_librarys_errors(store: DirectoryStore) -> None:
    store.put("k", b"data")
    file = store.open("k")
    os.close(file.fileno())  # from now on every read, and the close, fail with EBADF
    with pytest.raises(UnavailableError, match=r"reading file://.*/k") as caught:
        file.read()
    assert isinstance(caught.value.__cause__, OSError)
    assert (caught.value.key, caught.value.code) == ("k", "EBADF")
    with pytest.raises(UnavailableError, match=r"closing file://.*/k"):
        file.close()


def test_put_makes_new_directories_durable(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = _directory._fsync_dir

    def fsync_dir(path: str) -> None:
        synced.append(path)
        real(path)

    monkeypatch.setattr(_directory, "_fsync_dir", fsync_dir)
    store.put("p/q/r", b"x")
    # each new directory's entry in its parent, then the rename into its directory
    assert synced == [str(tmp_path), str(tmp_path / "p"), str(tmp_path / "p" / "q")]
    synced.clear()
    store.put("p/q/s", b"x")
    assert synced == [str(tmp_path / "p" / "q")]


def test_new_files_follow_the_umask(store: DirectoryStore, tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        store.put("group-writable", b"x")
        path, file = store.new_temp()
        file.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "group-writable").stat().st_mode) == 0o664
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


# -- atomic publish -------------------------------------------------------------------

# A put whose write fails midway: the file size limit stops it after 4 KiB (EFBIG).
_PARTIAL_WRITE = """
import resource, signal, sys
from s3repo_core import UnavailableError
from s3repo_core._directory import DirectoryStore
store = DirectoryStore(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    store.put("objects/k", b"n" * (1 << 20))
except UnavailableError as error:
    print("refused:", error)
    sys.exit(0)
sys.exit("the put succeeded")
"""


def test_a_put_that_fails_midway_leaves_the_old_bytes_and_no_partial_file(
    store: DirectoryStore, tmp_path: Path
) -> None:
    store.put("objects/k", b"old")
    done = subprocess.run(
        [sys.executable, "-c", _PARTIAL_WRITE, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "File too large" in done.stdout
    assert store.read("objects/k") == b"old"
    assert temp_files(tmp_path) == []
    assert visible_files(tmp_path) == ["objects/k"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_put_that_fails_before_publishing_changes_nothing(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    store.put("objects/k", b"old")

    def fail(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(UnavailableError, match=r"file://.*objects/k.*No space left") as caught:
        store.put("objects/k", b"new")
    assert isinstance(caught.value.__cause__, OSError)
    monkeypatch.undo()
    assert store.read("objects/k") == b"old"
    assert temp_files(tmp_path) == []


def test_a_reader_sees_the_old_bytes_or_the_new_never_a_mix(store: DirectoryStore) -> None:
    values = [b"a" * 200_000, b"b" * 300_000]
    store.put("k", values[0])
    stop = threading.Event()

    def rewrite() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            store.put("k", values[n % 2])

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = {store.read("k") for _ in range(300)}
    finally:
        stop.set()
        writer.join()
    assert seen <= set(values)


@needs_non_root
def test_a_read_only_temp_dir_refuses_the_put_and_nothing_appears(
    store: DirectoryStore, tmp_path: Path
) -> None:
    (tmp_path / TEMP_DIR).mkdir()
    (tmp_path / TEMP_DIR).chmod(0o555)
    try:
        with pytest.raises(PermissionDeniedError, match=TEMP_DIR):
            store.put("objects/k", b"x")
    finally:
        (tmp_path / TEMP_DIR).chmod(0o755)
    assert visible_files(tmp_path) == []


def test_temporary_files_are_never_listed(store: DirectoryStore, tmp_path: Path) -> None:
    store.put("k", b"x")
    path, file = store.new_temp()
    with file:
        file.write(b"unfinished")
    assert path.parent == tmp_path / TEMP_DIR
    assert listed(store) == ["k"]
    assert listed(store, ".") == []
    with pytest.raises(InvalidArgumentError):
        store.list_pages(f"{TEMP_DIR}/")


def test_publish_renames_a_temp_file_into_place(store: DirectoryStore, tmp_path: Path) -> None:
    path, file = store.new_temp()
    with file:
        file.write(b"streamed")
    store.publish(path, "p/objects/sha256:cd")
    assert store.read("p/objects/sha256:cd") == b"streamed"
    assert not path.exists()
    with pytest.raises(NotExistError, match=re.escape(str(path))):
        store.publish(path, "p/objects/sha256:ef")
    assert store.head("p/objects/sha256:ef") is None


def test_discard_removes_an_unpublished_temp_file(store: DirectoryStore, tmp_path: Path) -> None:
    path, file = store.new_temp()
    file.close()
    store.discard(path)
    store.discard(path)  # already gone: fine
    assert temp_files(tmp_path) == []


def test_a_key_and_keys_under_it_cannot_both_be_stored(
    store: DirectoryStore, tmp_path: Path
) -> None:
    store.put("a/b", b"x")
    with pytest.raises(NotSupportedError, match="keys lie under it"):
        store.put("a", b"y")
    with pytest.raises(NotSupportedError, match="a key lies on its path"):
        store.put("a/b/c", b"y")
    with pytest.raises(NotSupportedError, match="a key lies on its path"):
        store.put("a/b/c/d", b"y")
    path, file = store.new_temp()
    file.close()
    with pytest.raises(NotSupportedError):
        store.publish(path, "a")
    assert temp_files(tmp_path) == []
    assert visible_files(tmp_path) == ["a/b"]


# -- bad keys -------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_and_change_nothing(
    store: DirectoryStore, tmp_path: Path, key: str
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, b"x"),
        lambda: store.read(key),
        lambda: store.open(key),
        lambda: store.head(key),
        lambda: store.touch(key),
        lambda: store.delete(key),
        lambda: store.delete_quietly(key),
        lambda: store.delete_many(["fine", key]),
        lambda: store.path_of(key),
    ]
    store.put("fine", b"x")
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="invalid key"):
            call()
    assert visible_files(tmp_path) == ["fine"]
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("prefix", ["/abs", "a//b", "../x/", "a/../b", "a\\b", "nul\0", "./"])
def test_bad_listing_prefixes_are_refused_at_the_call(store: DirectoryStore, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid listing prefix"):
        store.list_pages(prefix)


# -- listing --------------------------------------------------------------------------


def test_listing_is_in_key_order_across_directories(store: DirectoryStore) -> None:
    fill(store, ORDER_KEYS)
    assert listed(store) == sorted(ORDER_KEYS)
    assert sorted(ORDER_KEYS, key=lambda k: k.encode()) == sorted(ORDER_KEYS)  # S3's order


def test_listed_items_carry_size_and_modified(store: DirectoryStore) -> None:
    store.put("d/k", b"12345")
    (item,) = next(iter(store.list_pages("d/"))).items
    st = store.head("d/k")
    assert st is not None
    assert (item.key, item.size, item.modified) == ("d/k", 5, st.modified)


@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
def test_every_prefix_and_start_after_lists_what_s3_would(
    store: DirectoryStore, page_size: int
) -> None:
    fill(store, ORDER_KEYS)
    keys = sorted(ORDER_KEYS)
    prefixes = {""} | {k[:n] for k in keys for n in range(1, len(k) + 1)}
    prefixes = {p for p in prefixes if "//" not in p}
    afters = ["", "a", "a/", "a/c", "a/c/", "a/c/e", "a/c/z", "a0", "objects/", "zz", "\U0010ffff"]
    for prefix in sorted(prefixes):
        for after in afters + [k for k in keys if k.startswith(prefix[:1])]:
            expected = [k for k in keys if k.startswith(prefix) and k > after]
            got = listed(store, prefix, after, page_size=page_size)
            assert got == expected, (prefix, after)


def test_random_keys_list_as_s3_would(store: DirectoryStore) -> None:
    rng = random.Random(20240601)
    alphabet = " -./0:aé\U0001f600"
    keys: set[str] = set()
    while len(keys) < 150:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        if is_key(store, key) and not any(
            other.startswith(f"{key}/") or key.startswith(f"{other}/") for other in keys
        ):
            keys.add(key)
    fill(store, sorted(keys))
    ordered = sorted(keys)
    assert listed(store) == ordered
    probes = [k[:n] for k in rng.sample(ordered, 40) for n in range(len(k) + 1)]
    for prefix in [p for p in probes if "//" not in p and not p.startswith(("/", "./", "../"))]:
        after = rng.choice([*probes, ""])
        expected = [k for k in ordered if k.startswith(prefix) and k > after]
        try:
            got = listed(store, prefix, after, page_size=rng.choice([1, 3, 1000]))
        except InvalidArgumentError:
            assert expected == [], prefix  # refused: a directory part no key has ("a/./")
            continue
        assert got == expected, (prefix, after)


def test_a_prefix_may_end_inside_a_name(store: DirectoryStore) -> None:
    fill(store, ["objects/sha256:ab", "objects/sha256:ac", "objects/sha256:ba", "objectsX"])
    assert listed(store, "objects/sha256:a") == ["objects/sha256:ab", "objects/sha256:ac"]
    assert listed(store, "objects/sha") == [
        "objects/sha256:ab",
        "objects/sha256:ac",
        "objects/sha256:ba",
    ]
    assert listed(store, "objects") == [
        "objects/sha256:ab",
        "objects/sha256:ac",
        "objects/sha256:ba",
        "objectsX",
    ]


def test_a_prefix_naming_nothing_lists_one_empty_page(store: DirectoryStore) -> None:
    store.put("file", b"x")
    for prefix in ("missing/", "missing/deeper/x", "file/", "zzz"):
        pages = list(store.list_pages(prefix))
        assert [(p.items, p.truncated) for p in pages] == [([], False)], prefix


def test_a_prefix_walks_only_the_directory_it_names(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, ["p/objects/sha256:ab", "p/objects/sha256:b", "p/uploads/x", "q/y"])
    read: list[str] = []
    real = os.listdir

    def listdir(path: str) -> list[str]:
        read.append(os.path.relpath(path, tmp_path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    assert listed(store, "p/objects/sha256:a") == ["p/objects/sha256:ab"]
    assert read == ["p/objects"]


@pytest.mark.parametrize(
    ("page_size", "sizes"), [(1, [1, 1, 1, 1, 1]), (2, [2, 2, 1]), (5, [5]), (1000, [5])]
)
def test_pages_hold_page_size_keys_and_only_the_last_is_not_truncated(
    store: DirectoryStore, page_size: int, sizes: list[int]
) -> None:
    fill(store, ["k/1", "k/2", "k/3", "k/4/x", "k/5"])
    pages = list(store.list_pages("k/", page_size=page_size))
    assert [len(p.items) for p in pages] == sizes
    assert [p.truncated for p in pages] == [True] * (len(sizes) - 1) + [False]


def test_pages_hold_at_most_1000_keys(store: DirectoryStore, tmp_path: Path) -> None:
    (tmp_path / "many").mkdir()
    for n in range(1001):
        (tmp_path / "many" / f"{n:04}").write_bytes(b"")
    for page_size in (None, 5000):
        pages = list(store.list_pages("many/", page_size=page_size))
        assert [(len(p.items), p.truncated) for p in pages] == [(1000, True), (1, False)]
    with pytest.raises(InvalidArgumentError):
        store.list_pages("many/", page_size=0)


def test_each_page_is_read_when_asked_for(store: DirectoryStore) -> None:
    fill(store, ["k/1", "k/3"])
    pages: Iterator[Page] = store.list_pages("k/", page_size=1)
    before = time.monotonic()
    first = next(pages)
    assert before <= first.sent_at <= time.monotonic()
    assert [i.key for i in first.items] == ["k/1"]
    store.put("k/2", b"x")  # after the first page, before the second: S3 would show it
    store.delete("k/3")
    second = next(pages)
    assert second.sent_at >= first.sent_at
    assert ([i.key for i in second.items], second.truncated) == (["k/2"], False)
    assert list(pages) == []


def test_a_file_removed_between_listing_and_stat_is_left_out(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, ["d/a", "d/b", "d/c"])
    real = os.listdir

    def listdir(path: str) -> list[str]:
        """Lists the directory, then removes d/b before it is looked at."""
        names = real(path)
        (tmp_path / "d" / "b").unlink(missing_ok=True)
        return names

    monkeypatch.setattr(os, "listdir", listdir)
    assert listed(store, "d/") == ["d/a", "d/c"]


def test_symlinks_list_as_what_a_read_sees(store: DirectoryStore, tmp_path: Path) -> None:
    fill(store, ["d/target", "other/x"])
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "target")
    (tmp_path / "d" / "dangling").symlink_to(tmp_path / "d" / "gone")
    (tmp_path / "d" / "dirlink").symlink_to(tmp_path / "other")  # not walked: no loops
    assert listed(store, "d/") == ["d/link", "d/target"]
    assert store.head("d/link") is not None and store.head("d/dangling") is None
    assert store.head("d/dirlink") is None


def test_names_that_are_not_utf8_are_not_keys(store: DirectoryStore, tmp_path: Path) -> None:
    store.put("d/ok", b"x")
    with open(os.path.join(os.fsencode(tmp_path), b"d", b"bad\xff"), "wb"):
        pass
    assert listed(store) == ["d/ok"]


# -- touching -------------------------------------------------------------------------


def test_touch_sets_the_modified_time_to_now(store: DirectoryStore, tmp_path: Path) -> None:
    store.put("objects/k", b"x")
    old = time.time() - 3600
    os.utime(tmp_path / "objects" / "k", (old, old))
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert store.touch("objects/k") is True
    st = store.head("objects/k")
    assert st is not None and before <= st.modified <= datetime.now(UTC)
    assert store.read("objects/k") == b"x"
    assert store.touch("objects/missing") is False
    assert store.touch("missing/dir/k") is False


# -- deleting -------------------------------------------------------------------------


def test_delete_removes_and_a_missing_key_is_fine(store: DirectoryStore) -> None:
    store.put("d/k", b"x")
    store.delete("d/k")
    assert store.head("d/k") is None
    store.delete("d/k")
    store.delete("no/such/dir")
    store.delete_quietly("d/k")


def test_delete_many_removes_all_and_reports_none(store: DirectoryStore, tmp_path: Path) -> None:
    fill(store, ["d/1", "d/2", "e/3"])
    assert store.delete_many(["d/1", "d/2", "e/3", "missing", "d/1"]) == {}
    assert visible_files(tmp_path) == []
    assert store.delete_many([]) == {}


def test_delete_many_takes_at_most_1000_keys_and_checks_all_first(store: DirectoryStore) -> None:
    store.put("k", b"x")
    with pytest.raises(InvalidArgumentError, match="1000"):
        store.delete_many(["k"] * 1001)
    with pytest.raises(InvalidArgumentError):
        store.delete_many(["k", "../bad"])
    assert store.head("k") is not None


def test_delete_many_reports_each_refused_key_with_a_code(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, ["a", "denied", "broken", "z"])
    real = os.unlink

    def unlink(path: str) -> None:
        if path.endswith("denied"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        if path.endswith("broken"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        real(path)

    monkeypatch.setattr(os, "unlink", unlink)
    failed = store.delete_many(["a", "denied", "broken", "z"])
    assert {key: code for key, (code, _) in failed.items()} == {
        "denied": "AccessDenied",
        "broken": "EIO",
    }
    assert str(tmp_path / "denied") in failed["denied"][1]
    monkeypatch.undo()
    assert visible_files(tmp_path) == ["broken", "denied"]


@needs_non_root
def test_delete_many_reports_a_key_in_a_read_only_directory(
    store: DirectoryStore, tmp_path: Path
) -> None:
    fill(store, ["free/a", "locked/b"])
    (tmp_path / "locked").chmod(0o555)
    try:
        failed = store.delete_many(["free/a", "locked/b"])
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert list(failed) == ["locked/b"] and failed["locked/b"][0] == "AccessDenied"
    assert visible_files(tmp_path) == ["locked/b"]


@needs_non_root
def test_delete_in_a_read_only_directory_is_permission_denied(
    store: DirectoryStore, tmp_path: Path
) -> None:
    store.put("locked/b", b"x")
    (tmp_path / "locked").chmod(0o555)
    try:
        with pytest.raises(PermissionDeniedError, match="locked/b"):
            store.delete("locked/b")
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_delete_quietly_logs_a_failure_instead_of_raising(
    store: DirectoryStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.put("k", b"x")

    def unlink(path: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "unlink", unlink)
    with caplog.at_level(logging.WARNING, logger="s3repo"):
        store.delete_quietly("k")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "file://" in caplog.text and "/k" in caplog.text


# -- unfinished writes, and the clock -------------------------------------------------


def test_unfinished_writes_are_uploads_that_can_be_aborted(store: DirectoryStore) -> None:
    assert list(store.list_uploads("p/")) == []
    temp, out = store.new_temp()
    out.write(b"half a write")
    out.close()
    [upload] = store.list_uploads("p/")
    assert upload.key == f"p/uploads/{temp.name}" and upload.upload_id == temp.name
    assert abs((datetime.now(UTC) - upload.initiated).total_seconds()) < 5
    assert store.abort_upload(upload) is True
    assert not temp.exists() and list(store.list_uploads("p/")) == []
    assert store.abort_upload(upload) is False
    with pytest.raises(InvalidArgumentError):
        store.abort_upload(PendingUpload("k", "../k", datetime.now(UTC)))


def test_server_now_is_this_clock(store: DirectoryStore) -> None:
    now = store.server_now("")
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


# -- error translation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), PermissionDeniedError),
        (PermissionError(errno.EPERM, "Operation not permitted"), PermissionDeniedError),
        (OSError(errno.EROFS, "Read-only file system"), PermissionDeniedError),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), NotExistError),
        (OSError(errno.ENAMETOOLONG, "File name too long"), InvalidArgumentError),
        (OSError(errno.ENOSPC, "No space left on device"), UnavailableError),
        (OSError(errno.EIO, "Input/output error"), UnavailableError),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), UnavailableError),
        (OSError("no errno at all"), UnavailableError),
    ],
)
def test_os_errors_become_the_librarys(error: OSError, kind: type[RepositoryError]) -> None:
    translated = translate_os_error(error, "reading file:///r/k")
    assert type(translated) is kind
    assert str(translated).startswith("reading file:///r/k: ")


def test_a_translated_error_is_chained_and_names_the_path(
    store: DirectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k", b"x")

    def stat(path: str, **_: Any) -> os.stat_result:
        raise OSError(errno.EIO, os.strerror(errno.EIO), path)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(UnavailableError, match=r"looking at file://.*/k: Input/output") as caught:
        store.head("k")
    assert isinstance(caught.value.__cause__, OSError)


def test_a_name_too_long_is_an_invalid_argument(store: DirectoryStore) -> None:
    with pytest.raises(InvalidArgumentError, match="too long"):
        store.put("x" * 300, b"x")
