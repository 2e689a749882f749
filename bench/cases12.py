"""The sides of the cases issue 12 added: stored sets re-ingested at three ages, ingest
against s5cmd, and collection of a large repository.

Each repetition starts from the same state, which its side builds untimed with a client
that is not counted (:attr:`~bench.context.Env.setup_client`), and removes afterwards:

- **re-ingest**: the directory is stored (ours with ``put_files``, the peer with
  ``s5cmd sync``) once per server, as a template; each repetition copies it to a prefix
  of its own at the real time (moto's CopyObject, in its process: a copy keeps the
  bytes, ETag and metadata the writer stored), the server's clock is moved on by the
  age, and the same directory is stored again, timed. The writer may refresh what it
  finds, so no run's state is reused. Ages need a clock that moves: moto's.
- **collect**: a repository of live and dead objects, all older than grace: the live
  half is stored once (by the case's prepare), the dead half again before each run,
  then the clock is moved past grace.

The clock is reset before and after each run, so that it runs true between runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from s3repo_core import Digest, ExactLiveset
from s3repo_core._names import Layout

from . import s5cmd
from .baselines import list_and_delete
from .context import Env, Sizes

Side = Callable[[Env], float]

#: The ages of the re-ingested set, in seconds: stored seconds ago (younger than
#: settle, 60 s), between settle and refresh_window (1 h), older than refresh_window.
AGES = {"now": 0.0, "10min": 600.0, "2d": 2 * 86400.0}
#: How far past grace the collected objects are (the repository's default windows).
_PAST_GRACE = timedelta(hours=24, minutes=10).total_seconds()
_MANY_PREFIX = "collect-many"


def small_dir(env: Env) -> Path:
    return env.files_dir


def large_dir(env: Env) -> Path:
    return env.workdir / "large-files"


def write_large_files(env: Env) -> None:
    """The directory of larger files (random bytes)."""
    large_dir(env).mkdir()
    for i in range(env.sizes.large_files):
        path = large_dir(env) / f"large-{i:04d}.bin"
        path.write_bytes(os.urandom(env.sizes.large_file_size))


def paths_in(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def _prefix(env: Env, side: str) -> str:
    return f"{env.case}/{env.rep}/{side}"


def _s5cmd(env: Env, *args: str) -> str:
    out, peak = s5cmd.run(list(args), env.endpoint, env.sizes.concurrency)
    env.memory = peak  # the peer's own peak RSS: the worker only waits for it
    return out


def copied(out: str) -> int:
    """How many objects an s5cmd run copied (it prints a line for each)."""
    return sum(1 for line in out.splitlines() if line.startswith("cp "))


# -- re-ingest of a stored directory ---------------------------------------------------------


def _store_ours(env: Env, folder: Path, prefix: str) -> None:
    """The directory stored by put_files, in a repository that uses touch records."""
    setup = env.repo(prefix, client=env.setup_client)
    enable = getattr(setup, "enable_touch_records", None)
    if enable is not None:
        enable()
    setup.put_files(paths_in(folder))


def _store_s5cmd(env: Env, folder: Path, prefix: str) -> None:
    """The directory synced by s5cmd."""
    out = _s5cmd(env, "sync", f"{folder}/", f"s3://{env.bucket}/{prefix}/")
    if copied(out) != len(paths_in(folder)):
        raise AssertionError("the first s5cmd sync did not copy every file")


_STORE = {"ours": _store_ours, "s5cmd": _store_s5cmd}


def prepare_stored(folder: Callable[[Env], Path], label: str) -> Callable[[Env], dict[str, Any]]:
    """Where the server has a fast path, the set stored once by each side, as a template
    that each repetition copies (the three ages share it); else nothing."""

    def prepare(env: Env) -> dict[str, Any]:
        if not env.fast_put:
            return {}
        templates = {side: f"templates/{label}/{side}" for side in _STORE}
        for side, prefix in templates.items():
            listed = env.setup_client.list_objects_v2(
                Bucket=env.bucket, Prefix=f"{prefix}/", MaxKeys=1
            )
            if not listed.get("KeyCount"):
                _STORE[side](env, folder(env), prefix)
        return {"templates": templates}

    return prepare


def _stored(env: Env, side: str, folder: Path, prefix: str) -> None:
    """The run's prefix as ``side`` stored it: a copy of its template, else stored now."""
    template = env.params.get("templates", {}).get(side)
    if template is None:
        _STORE[side](env, folder, prefix)
    elif env.copy_prefix(template, prefix) == 0:
        raise AssertionError(f"the template {template} is empty")


@contextmanager
def own_prefix(env: Env, side: str) -> Iterator[str]:
    """A fresh prefix for one repetition of ``side``, emptied afterwards whatever happens."""
    prefix = _prefix(env, side)
    try:
        yield prefix
    finally:
        env.clear_prefix(prefix)


def _reingest(
    folder: Callable[[Env], Path],
    age: float,
    who: str,
    again: Callable[[Env, list[Path], str], None],
) -> Side:
    """A side that finds the directory stored by ``who`` ``age`` seconds ago, then times
    ``again(env, paths, prefix)``: storing it once more."""

    def side(env: Env) -> float:
        paths = paths_in(folder(env))
        env.move_clock(reset=True)
        try:
            with own_prefix(env, who) as prefix:
                _stored(env, who, folder(env), prefix)
                env.move_clock(age)
                again(env, paths, prefix)
        finally:
            env.move_clock(reset=True)
        return len(paths)

    return side


def reingest_ours(folder: Callable[[Env], Path], age: float) -> Side:
    """put_files of a directory stored ``age`` seconds ago by put_files."""

    def again(env: Env, paths: list[Path], prefix: str) -> None:
        env.forget_setup_memory()
        repo = env.repo(prefix)
        with env.measure():
            files = repo.put_files(paths)
        if len({file.digest for file in files}) != len(paths):
            raise AssertionError(f"{len(paths)} distinct files gave other digests")

    return _reingest(folder, age, "ours", again)


def reingest_s5cmd(folder: Callable[[Env], Path], age: float) -> Side:
    """s5cmd sync of a directory synced ``age`` seconds ago."""

    def again(env: Env, paths: list[Path], prefix: str) -> None:
        with env.measure():
            out = _s5cmd(env, "sync", f"{folder(env)}/", f"s3://{env.bucket}/{prefix}/")
        if copied(out):
            raise AssertionError(f"s5cmd sync copied {copied(out)} stored files again")

    return _reingest(folder, age, "s5cmd", again)


# -- ingest of a new directory ----------------------------------------------------------------


def ingest_ours(folder: Callable[[Env], Path]) -> Side:
    def side(env: Env) -> float:
        paths = paths_in(folder(env))
        with own_prefix(env, "ours") as prefix:
            repo = env.repo(prefix, client=env.built_client)  # as dial() would
            with env.measure():
                files = repo.put_files(paths)
            if len({file.digest for file in files}) != len(paths):
                raise AssertionError(f"{len(paths)} distinct files gave other digests")
        return len(paths)

    return side


def ingest_boto3(folder: Callable[[Env], Path]) -> Side:
    """PutObject of each file from a thread pool of the run's concurrency."""

    def side(env: Env) -> float:
        paths = paths_in(folder(env))
        client, bucket = env.client, env.bucket
        with own_prefix(env, "boto3") as prefix:

            def put(path: Path) -> None:
                with open(path, "rb") as body:
                    client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=body)

            with ThreadPoolExecutor(env.sizes.concurrency) as pool, env.measure():
                list(pool.map(put, paths))
        return len(paths)

    return side


def ingest_s5cmd(folder: Callable[[Env], Path]) -> Side:
    """s5cmd cp of the directory's files to a new prefix."""

    def side(env: Env) -> float:
        paths = paths_in(folder(env))
        with own_prefix(env, "s5cmd") as prefix:
            with env.measure():
                out = _s5cmd(env, "cp", f"{folder(env)}/*", f"s3://{env.bucket}/{prefix}/")
            if copied(out) != len(paths):
                raise AssertionError(f"s5cmd cp copied {copied(out)} of {len(paths)} files")
        return len(paths)

    return side


def listing_pages_plus_3(sizes: Sizes) -> int:
    """The re-ingest aim for requests: the pages that list the stored set, plus 3."""
    return math.ceil(sizes.files / 1000) + 3


# -- collect a large repository ----------------------------------------------------------------


def _many_contents(sizes: Sizes, kind: str) -> list[bytes]:
    return [b"%s-%d" % (kind.encode(), i) for i in range(sizes.many_objects // 2)]


def _store_many(env: Env, bucket: str, kind: str) -> None:
    layout = Layout(_MANY_PREFIX)
    bodies = _many_contents(env.sizes, kind)
    env.put_many(bucket, [(layout.object_key(Digest.of(body)), body) for body in bodies])


def prepare_many(env: Env) -> dict[str, Any]:
    """A bucket of its own (a LIST costs in proportion to the bucket) with the live half;
    moto serves its requests one at a time (see ``servers``)."""
    from .servers import SERIAL_BUCKETS

    bucket = f"{SERIAL_BUCKETS}collect-many-{os.urandom(4).hex()}"
    env.setup_client.create_bucket(Bucket=bucket)
    _store_many(env, bucket, "live")
    return {"bucket": bucket}


def _age_many(env: Env) -> None:
    """The dead half stored again, and every object moved past grace."""
    env.bucket = env.params["bucket"]
    env.move_clock(reset=True)
    _store_many(env, env.bucket, "dead")
    env.move_clock(_PAST_GRACE)
    env.forget_setup_memory()


def collect_many_ours(env: Env) -> float:
    live = _many_contents(env.sizes, "live")
    _age_many(env)
    try:
        repo = env.repo(_MANY_PREFIX)  # the repository's default windows: grace 24 h
        liveset = ExactLiveset(Digest.of(body) for body in live)
        with env.measure():
            report = repo.collect(liveset)
    finally:
        env.move_clock(reset=True)
    if (report.scanned, report.collected) != (2 * len(live), len(live)):
        raise AssertionError(f"unexpected collection: {report.summary()}")
    return report.scanned


def collect_many_base(env: Env) -> float:
    """List with a paginator, DeleteObjects of 1,000, sequential; the threshold is grace
    before the server's Date on the first page."""
    live = _many_contents(env.sizes, "live")
    _age_many(env)
    client, bucket, layout = env.client, env.bucket, Layout(_MANY_PREFIX)
    keep = {str(Digest.of(body)) for body in live}

    def grace_before_date(page: dict[str, Any]) -> datetime:
        date = page["ResponseMetadata"]["HTTPHeaders"]["date"]
        return parsedate_to_datetime(date) - timedelta(hours=24)

    try:
        with env.measure():
            scanned, deleted = list_and_delete(
                client, bucket, layout.objects, keep, grace_before_date
            )
    finally:
        env.move_clock(reset=True)
    if (scanned, deleted) != (2 * len(live), len(live)):
        raise AssertionError(f"baseline scanned {scanned} and deleted {deleted}")
    return scanned


def deletes_aim(sizes: Sizes) -> int:
    """The collect aim for DeleteObjects: deletions / 1,000 (rounded up) + the shards
    that hold objects (the digest-prefix ones: not "other" or "uploads")."""
    from s3repo_core import shard_names

    digest_shards = [name for name in shard_names() if set(name) <= set("0123456789abcdef")]
    return math.ceil(sizes.many_objects // 2 / 1000) + len(digest_shards)
