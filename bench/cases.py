"""The benchmark cases of issues 5, 12 and 14: our side, the baseline side(s), and the aims.

A side is a function of an :class:`~bench.context.Env` that does its set-up, times only
the operation under test with ``env.measure()``, cleans up, and returns the amount of
work done (bytes, files, objects or keys). Both sides of a case get the same data, the
same boto3 client configuration, the same part size and the same concurrency (s5cmd
runs with ``--numworkers`` of that concurrency). Issue 12's sides are in ``cases12``,
issue 14's in ``cases14``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from s3repo_core import Digest, ExactLiveset, File
from s3repo_core._names import Layout

from . import cases12, cases14
from .baselines import list_and_delete
from .cases12 import AGES, large_dir, small_dir
from .context import Env, Sizes

Side = Callable[[Env], float]
SERVERS = ("moto", "juicefs")


@dataclass(frozen=True)
class Case:
    """One row of the issue's table (one per server)."""

    name: str
    title: str
    baseline: str
    unit: str  # "MiB/s", "files/s", "objects/s" or "keys/s"
    aim: float  # our throughput / the baseline's, at least
    uses_server: bool
    ours: Side
    base: Side
    prepare: Callable[[Env], dict[str, Any]] | None = None
    memory_aim: float | None = None  # our memory / the baseline's, at most
    # Issue 12 states aims as our time / the peer's, at most: ``aim`` is then its inverse.
    time_aim: float | None = None
    time_goal: float | None = None  # a further goal, shown but not judged
    # More peers, by name: the row's baseline is whichever is fastest (median)...
    peers: tuple[tuple[str, Side], ...] = ()
    # ...unless the issue sets an aim against each: our time / that peer's, at most,
    # judged besides ``aim``, which is then against the base alone.
    peer_time_aims: tuple[tuple[str, float], ...] = ()
    base_name: str = "baseline"  # the base's name where there are several peers
    servers: tuple[str, ...] = SERVERS
    # Requests are counted by the server, for both sides (s5cmd's are out of boto3's
    # sight); elsewhere by the side's boto3 client.
    count_on_server: bool = False
    # The sides that run another program (s3repo, python -c): only the server sees
    # their requests, and the worker's client counts none.
    out_of_process: tuple[str, ...] = ()
    # The sides whose client is one s3repo built (``Env.built_client``): its direct
    # PutObjects are out of client events' sight too, and only the server counts them.
    built_client: tuple[str, ...] = ()
    request_limit: Callable[[Sizes], int] | None = None  # our requests, at most
    delete_limit: Callable[[Sizes], int] | None = None  # our DeleteObjects, at most
    repetitions: int | None = None  # its own default, for a case too long for three

    def scale(self, amount: float) -> float:
        """``amount`` in this case's unit (bytes are shown in MiB)."""
        return amount / (1024 * 1024) if self.unit == "MiB/s" else amount

    @property
    def sides(self) -> tuple[str, ...]:
        """The side names: "ours", "baseline", then the other peers'."""
        return ("ours", "baseline", *(name for name, _ in self.peers))

    def side(self, name: str) -> Side:
        if name == "ours":
            return self.ours
        if name == "baseline":
            return self.base
        return dict(self.peers)[name]

    def peer_name(self, side: str) -> str:
        return self.base_name if side == "baseline" else side

    def client_sees(self, side: str) -> bool:
        """Whether the worker's boto3 client sends every request of ``side`` (so that its
        count must agree with the server's): not s5cmd's, nor another program's."""
        return (
            self.peer_name(side) != "s5cmd"
            and side not in self.out_of_process
            and side not in self.built_client
        )

    @property
    def uses_s5cmd(self) -> bool:
        return "s5cmd" in (self.base_name, *(name for name, _ in self.peers))


def issue12(
    name: str,
    title: str,
    baseline: str,
    unit: str,
    time_aim: float,
    ours: Side,
    base: Side,
    **more: Any,
) -> Case:
    """A case of issue 12: its aim is our time / the peer's, at most."""
    aim = 1 / time_aim
    return Case(name, title, baseline, unit, aim, True, ours, base, time_aim=time_aim, **more)


def _stream_digest(env: Env) -> Digest:
    return Digest.parse(env.stream_path.with_suffix(".digest").read_text().strip())


def _delete(env: Env, *keys: str) -> None:
    for key in keys:
        env.client.delete_object(Bucket=env.bucket, Key=key)


def _baseline_key(env: Env, what: str) -> str:
    return f"baseline/{env.case}/{env.rep}/{what}"


# -- put a stream ---------------------------------------------------------------------------


def put_stream_ours(env: Env) -> float:
    repo = env.repo(f"put-stream/{env.rep}")
    with open(env.stream_path, "rb") as body, env.measure():
        digest = repo.put(body)
    _delete(env, repo.layout.object_key(digest))
    return env.sizes.stream


def put_stream_base(env: Env) -> float:
    key = _baseline_key(env, "stream")
    with open(env.stream_path, "rb") as body, env.measure():
        env.client.upload_fileobj(body, env.bucket, key, Config=env.transfer_config())
    _delete(env, key)
    return env.sizes.stream


class Pipe(io.RawIOBase):
    """A file read as a pipe: it cannot seek, so its length is unknown until the end."""

    def __init__(self, path: Any) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed with the pipe)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


def put_pipe_ours(env: Env) -> float:
    repo = env.repo(f"put-pipe/{env.rep}")
    with Pipe(env.stream_path) as body, env.measure():
        digest = repo.put(body)
    _delete(env, repo.layout.object_key(digest))
    return env.sizes.stream


def put_pipe_base(env: Env) -> float:
    key = _baseline_key(env, "pipe")
    with Pipe(env.stream_path) as body, env.measure():
        env.client.upload_fileobj(body, env.bucket, key, Config=env.transfer_config())
    _delete(env, key)
    return env.sizes.stream


# -- put_file -------------------------------------------------------------------------------


def put_file_ours(env: Env) -> float:
    repo = env.repo(f"put-file/{env.rep}")
    file = File(_stream_digest(env), env.sizes.stream)
    with open(env.stream_path, "rb") as body, env.measure():
        repo.put_file(file, body)
    _delete(env, repo.layout.object_key(file.digest))
    return env.sizes.stream


def put_file_base(env: Env) -> float:
    key = _baseline_key(env, "file")
    with env.measure():
        env.client.upload_file(str(env.stream_path), env.bucket, key, Config=env.transfer_config())
    _delete(env, key)
    return env.sizes.stream


# -- get and get_file (of one object stored by prepare) -------------------------------------


def store_stream(env: Env) -> dict[str, Any]:
    repo = env.repo("stored")
    with open(env.stream_path, "rb") as body:
        repo.put_file(File(_stream_digest(env), env.sizes.stream), body)
    # Read it once untimed: the JuiceFS gateway's first read of a new object is up to
    # twice as slow, and it would fall on whichever side runs first.
    key = repo.layout.object_key(_stream_digest(env))
    body = env.client.get_object(Bucket=env.bucket, Key=key)["Body"]
    while body.read(8 * 1024 * 1024):
        pass
    return {"prefix": "stored"}


def get_ours(env: Env) -> float:
    repo = env.repo(env.params["prefix"])
    digest = _stream_digest(env)
    with env.measure(), repo.get(digest) as stream:
        while stream.read(1024 * 1024):
            pass
    return env.sizes.stream


def get_base(env: Env) -> float:
    key = Layout(env.params["prefix"]).object_key(_stream_digest(env))
    with env.measure():
        body = env.client.get_object(Bucket=env.bucket, Key=key)["Body"]
        while body.read(1024 * 1024):
            pass
    return env.sizes.stream


def get_file_ours(env: Env) -> float:
    repo = env.repo(env.params["prefix"])
    dest = env.workdir / f"get-file-ours-{env.rep}.bin"
    with env.measure():
        repo.get_file(_stream_digest(env), dest)
    dest.unlink()
    return env.sizes.stream


def get_file_base(env: Env) -> float:
    key = Layout(env.params["prefix"]).object_key(_stream_digest(env))
    dest = env.workdir / f"get-file-base-{env.rep}.bin"
    with env.measure():
        env.client.download_file(env.bucket, key, str(dest), Config=env.transfer_config())
    dest.unlink()
    return env.sizes.stream


# -- re-put of stored content -----------------------------------------------------------------


def dedup_ours(env: Env) -> float:
    repo = env.repo(env.params["prefix"])
    data = env.stream_path.read_bytes()
    with env.measure():
        digest = repo.put(data)
    if digest != _stream_digest(env):
        raise AssertionError(f"put returned {digest}")
    return len(data)


def hashlib_base(env: Env) -> float:
    """The baseline of dedup and hash: hashlib over the same bytes, in memory."""
    data = env.stream_path.read_bytes()
    with env.measure():
        hashlib.sha256(data).digest()
    return len(data)


# -- hashing on put's path --------------------------------------------------------------------


def hash_ours(env: Env) -> float:
    from s3repo_core._streams import HashingReader

    data = env.stream_path.read_bytes()
    part = env.sizes.part_size
    with env.measure():
        reader = HashingReader(io.BytesIO(data))
        for _ in reader.chunks(lambda _: part):
            pass
        reader.digest  # noqa: B018 (the digest is part of the work)
    return len(data)


# -- ingest a directory of small files --------------------------------------------------------


def _files(env: Env) -> list[Any]:
    return sorted(env.files_dir.iterdir())


def ingest_ours(env: Env) -> float:
    repo = env.repo(f"ingest/{env.rep}")
    paths = _files(env)
    with env.measure():
        files = repo.put_files(paths)
    distinct = len({file.digest for file in files})
    if distinct != len(paths):
        raise AssertionError(f"{len(paths)} distinct files gave {distinct} digests")
    return len(paths)


def ingest_base(env: Env) -> float:
    client, bucket = env.client, env.bucket
    paths = _files(env)

    def put(path: Any) -> None:
        with open(path, "rb") as body:
            client.put_object(Bucket=bucket, Key=_baseline_key(env, path.name), Body=body)

    with ThreadPoolExecutor(env.sizes.concurrency) as pool, env.measure():
        list(pool.map(put, paths))
    return len(paths)


# -- collect ----------------------------------------------------------------------------------


_COLLECT_PREFIX = "collect"


def _collect_contents(env: Env) -> tuple[list[bytes], list[bytes]]:
    half = env.sizes.collect_objects // 2
    return [b"live-%d" % i for i in range(half)], [b"dead-%d" % i for i in range(half)]


def _collect_bucket(env: Env, side: str) -> str:
    """The bucket of one repetition's repository: its own, as LISTs on moto and the
    JuiceFS gateway cost in proportion to everything in the bucket or directory."""
    return env.params["buckets"][f"{env.rep}/{side}"]  # type: ignore[no-any-return]


def populate_collect(env: Env) -> dict[str, Any]:
    """Every repetition's repositories, written at once so one wait ages them all."""
    live, dead = _collect_contents(env)
    client = env.client
    buckets = {
        f"{rep}/{side}": f"collect-{rep}-{side}-{os.urandom(4).hex()}"
        for rep in range(env.reps)
        for side in ("ours", "baseline")
    }
    for bucket in buckets.values():
        client.create_bucket(Bucket=bucket)
    layout = Layout(_COLLECT_PREFIX)
    jobs = [(bucket, body) for bucket in buckets.values() for body in live + dead]

    def put(job: tuple[str, bytes]) -> None:
        client.put_object(Bucket=job[0], Key=layout.object_key(Digest.of(job[1])), Body=job[1])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, jobs))
    grace = env.sizes.windows[2]
    # Whole-second Last-Modified and Date: two more seconds and every object is past grace.
    return {"buckets": buckets, "ready_at": time.time() + grace + 3}


def _windows(env: Env) -> dict[str, timedelta]:
    refresh, settle, grace = env.sizes.windows
    return {
        "refresh_window": timedelta(seconds=refresh),
        "settle": timedelta(seconds=settle),
        "grace": timedelta(seconds=grace),
    }


def collect_ours(env: Env) -> float:
    live, dead = _collect_contents(env)
    env.bucket = _collect_bucket(env, "ours")
    repo = env.repo(_COLLECT_PREFIX, **_windows(env))
    liveset = ExactLiveset(Digest.of(body) for body in live)
    with env.measure():
        report = repo.collect(liveset)
    if (report.scanned, report.collected) != (len(live) + len(dead), len(dead)):
        raise AssertionError(f"unexpected collection: {report.summary()}")
    return report.scanned


def collect_base(env: Env) -> float:
    live, dead = _collect_contents(env)
    client, bucket = env.client, _collect_bucket(env, "baseline")
    layout = Layout(_COLLECT_PREFIX)
    keep = {str(Digest.of(body)) for body in live}
    threshold = datetime.now(UTC) - _windows(env)["grace"]
    with env.measure():
        scanned, deleted = list_and_delete(
            client, bucket, layout.objects, keep, lambda _page: threshold
        )
    if (scanned, deleted) != (len(live) + len(dead), len(dead)):
        raise AssertionError(f"baseline scanned {scanned} and deleted {deleted}")
    return scanned


# -- classify listed keys against a liveset, client side ----------------------------------------

_CLASSIFY_PREFIX = "bench"


def _classify_data(env: Env) -> tuple[list[list[str]], np.ndarray]:
    """Listed keys in listing order, in batches, and the raw digests of a random half."""
    rng = np.random.default_rng(5)
    n, batch = env.sizes.keys, env.sizes.batch
    raw = np.frombuffer(rng.bytes(32 * n), dtype="V32")
    raw = raw[np.lexsort(raw.view(">u8").reshape(-1, 4).T[::-1])]  # S3 lists in key order
    live = raw[np.sort(rng.permutation(n)[: env.sizes.live])]
    objects = Layout(_CLASSIFY_PREFIX).objects
    batches = []
    for start in range(0, n, batch):
        hexes = raw[start : start + batch].tobytes().hex()
        batches.append([f"{objects}sha256:{hexes[i : i + 64]}" for i in range(0, len(hexes), 64)])
    return batches, live


def _traced(build: Callable[[], Any]) -> tuple[Any, int]:
    """``build()`` and the bytes it still holds afterwards (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return built, held


def classify_ours(env: Env) -> float:
    from s3repo_core._collect import classify_keys

    batches, live = _classify_data(env)
    liveset, env.memory = _traced(lambda: ExactLiveset.from_array(live))
    layout = Layout(_CLASSIFY_PREFIX)
    found = 0
    with env.measure():
        for keys in batches:
            found += int(classify_keys(layout, liveset, keys)[1].sum())
    if found != env.sizes.live:
        raise AssertionError(f"found {found} live keys, expected {env.sizes.live}")
    return env.sizes.keys


def classify_base(env: Env) -> float:
    batches, live = _classify_data(env)

    def build() -> set[str]:
        hexes = live.tobytes().hex()
        return {f"sha256:{hexes[i : i + 64]}" for i in range(0, len(hexes), 64)}

    liveset, env.memory = _traced(build)
    skip = len(Layout(_CLASSIFY_PREFIX).objects)
    found = 0
    with env.measure():
        for keys in batches:
            found += sum([key[skip:] in liveset for key in keys])
    if found != env.sizes.live:
        raise AssertionError(f"found {found} live keys, expected {env.sizes.live}")
    return env.sizes.keys


CASES = [
    Case(
        "put",
        "put a 256 MiB stream, an open file (hash, then upload to its key)",
        "boto3 upload_fileobj, same part size and concurrency, no hashing",
        "MiB/s",
        0.9,
        True,
        put_stream_ours,
        put_stream_base,
    ),
    Case(
        "put_pipe",
        "put a 256 MiB stream that cannot seek (hash + upload to uploads/ + server-side copy)",
        "boto3 upload_fileobj of the same unseekable stream",
        "MiB/s",
        0.9,
        True,
        put_pipe_ours,
        put_pipe_base,
    ),
    Case(
        "put_file",
        "put_file of a 256 MiB file",
        "boto3 upload_file",
        "MiB/s",
        0.95,
        True,
        put_file_ours,
        put_file_base,
    ),
    Case(
        "get",
        "get, streamed and verified",
        "boto3 get_object read to the end, unverified",
        "MiB/s",
        0.9,
        True,
        get_ours,
        get_base,
        prepare=store_stream,
    ),
    Case(
        "get_file",
        "get_file to a path, verified",
        "boto3 download_file",
        "MiB/s",
        0.95,
        True,
        get_file_ours,
        get_file_base,
        prepare=store_stream,
    ),
    Case(
        "dedup",
        "re-put of content already stored (256 MiB bytes)",
        "hashing the same bytes with hashlib",
        "MiB/s",
        0.8,
        True,
        dedup_ours,
        hashlib_base,
        prepare=store_stream,
    ),
    Case(
        "ingest",
        "ingest a directory of 2,000 small files (16 KiB) with put_files, as the ingest op does",
        "boto3 put_object from a thread pool of the same size",
        "files/s",
        1.0,
        True,
        ingest_ours,
        ingest_base,
    ),
    Case(
        "collect",
        "collect 20,000 objects, half live",
        "list with a paginator + DeleteObjects batches, sequential",
        "objects/s",
        1.0,
        True,
        collect_ours,
        collect_base,
        prepare=populate_collect,
    ),
    Case(
        "classify",
        "classify 10M listed keys against a 5M-digest liveset, client side",
        "a Python set of digest strings",
        "keys/s",
        5.0,
        False,
        classify_ours,
        classify_base,
        memory_aim=0.25,
    ),
    Case(
        "hash",
        "hashing throughput in put (HashingReader over a 256 MiB buffer)",
        "hashlib.sha256 on the same buffer",
        "MiB/s",
        0.9,
        False,
        hash_ours,
        hashlib_base,
    ),
]


def _stored_and_new() -> list[Case]:
    """Issue 12's re-ingest cases (a stored directory, at each age) and ingest cases."""
    ages = {"now": "stored just now", "10min": "stored 10 min ago", "2d": "stored 2 days ago"}
    found = []
    for label, folder, what in (
        ("16k", small_dir, "2,000 files of 16 KiB"),
        ("1m", large_dir, "200 files of 1 MiB"),
    ):
        for age, seconds in AGES.items():
            found.append(
                issue12(
                    f"reingest_{label}_{age}",
                    f"re-ingest of {what}, all {ages[age]} (moto's clock), with put_files",
                    "s5cmd sync of the same directory to a prefix where it was already synced",
                    "files/s",
                    1.5,
                    cases12.reingest_ours(folder, seconds),
                    cases12.reingest_s5cmd(folder, seconds),
                    base_name="s5cmd",
                    servers=("moto",),
                    count_on_server=True,
                    prepare=cases12.prepare_stored(folder, label),
                    request_limit=cases12.listing_pages_plus_3 if label == "16k" else None,
                )
            )
    for label, folder, what in (
        ("16k", small_dir, "2,000 new files of 16 KiB"),
        ("1m", large_dir, "200 new files of 1 MiB"),
    ):
        found.append(
            issue12(
                f"ingest_{label}_new",
                f"ingest of {what} with put_files",
                "the best of boto3 put_object from a thread pool and s5cmd cp",
                "files/s",
                1.05,
                cases12.ingest_ours(folder),
                cases12.ingest_boto3(folder),
                base_name="boto3",
                peers=(("s5cmd", cases12.ingest_s5cmd(folder)),),
                count_on_server=True,
                built_client=("ours",),
            )
        )
    return found


# Issue 12's cases follow issue 5's, with issue 14's among them; collect_100k last, as
# its 100,000 objects stay in moto's memory until the server stops.
CASES += _stored_and_new()
CASES += [
    issue12(
        "put_open_file",
        "put of a 256 MiB open file (hash, then upload to its key)",
        "boto3 upload_file",
        "MiB/s",
        1.15,
        put_stream_ours,
        put_file_base,
        time_goal=1.05,
    ),
    issue12(
        "get_file_256m",
        "get_file of 256 MiB to a path, verified (issue 12's aim)",
        "boto3 download_file",
        "MiB/s",
        1.1,
        get_file_ours,
        get_file_base,
        prepare=store_stream,
    ),
    issue12(
        "cli_stat_startup",
        "the process `s3repo stat DIGEST --repo s3r://...` (the installed entry point), "
        "start to exit",
        "the floor: python -c that imports botocore, builds an S3 client, sends one HEAD",
        "runs/s",
        1.25,
        cases14.stat_ours,
        cases14.stat_floor,
        base_name="floor",
        prepare=cases14.prepare_stat,
        count_on_server=True,
        out_of_process=("ours", "baseline"),
        # One run is half a second, and start-up times vary: alternate many.
        repetitions=15,
    ),
    issue12(
        "cli_put_dir_2k",
        "the process `s3repo put DIR` of 2,000 new files of 16 KiB (the installed entry "
        "point, S3REPO_URL), start to exit",
        "put_files of the same paths in a library process; s5cmd cp DIR/ beside it",
        "files/s",
        1.1,
        cases14.put_dir_ours,
        cases14.put_dir_library,
        base_name="put_files",
        peers=(("s5cmd", cases14.put_dir_s5cmd),),
        peer_time_aims=(("s5cmd", 1.2),),
        prepare=cases14.prepare_put,
        count_on_server=True,
        out_of_process=("ours",),
        built_client=("baseline",),
    ),
    Case(
        "cli_verify_all",
        "the process `s3repo verify --all` of a repository of 200 objects of 1 MiB, start to exit",
        "boto3 get_object of the same keys from a thread pool of the same concurrency, "
        "each read to the end, unverified",
        "MiB/s",
        0.9,
        True,
        cases14.verify_ours,
        cases14.verify_boto3,
        base_name="boto3",
        peers=(("boto3 process", cases14.verify_boto3_process),),
        prepare=cases14.prepare_verify,
        count_on_server=True,
        out_of_process=("ours", "boto3 process"),
        repetitions=5,  # a run of a side is about two seconds: alternate more
    ),
    Case(
        "verify_library",
        "verify() of the repository of cli_verify_all, in a running process",
        "boto3 get_object of the same keys from a thread pool of the same concurrency, "
        "each read to the end, unverified",
        "MiB/s",
        0.9,
        True,
        cases14.verify_library,
        cases14.verify_boto3,
        prepare=cases14.prepare_verify,
        count_on_server=True,
        built_client=("ours",),
        repetitions=5,
    ),
    issue12(
        "collect_100k",
        "collect 100,000 objects older than grace (moto's clock), half live, default windows",
        "list with a paginator + DeleteObjects batches, sequential",
        "objects/s",
        1.0,
        cases12.collect_many_ours,
        cases12.collect_many_base,
        prepare=cases12.prepare_many,
        servers=("moto",),
        delete_limit=cases12.deletes_aim,
        # moto reads the whole bucket for each LIST page: one run of a side takes minutes.
        repetitions=1,
    ),
]
BY_NAME = {case.name: case for case in CASES}


def write_data(env: Env) -> None:
    """The run's local data: ``stream.bin`` (random), its digest, the small files and the
    larger ones. The files' mtimes are a day back, so that a sync to S3 finds its copies
    newer (S3's Last-Modified is whole seconds: a file written within the second of its
    upload would look newer than its copy)."""
    hasher = hashlib.sha256()
    with open(env.stream_path, "wb") as out:
        left = env.sizes.stream
        while left:
            chunk = os.urandom(min(left, 16 * 1024 * 1024))
            hasher.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    env.stream_path.with_suffix(".digest").write_text(f"sha256:{hasher.hexdigest()}\n")
    env.files_dir.mkdir()
    for i in range(env.sizes.files):
        (env.files_dir / f"file-{i:05d}.bin").write_bytes(os.urandom(env.sizes.file_size))
    cases12.write_large_files(env)
    day_back = time.time() - 86400
    for folder in (small_dir(env), large_dir(env)):
        for path in folder.iterdir():
            os.utime(path, (day_back, day_back))
