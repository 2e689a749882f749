"""The sides of the case issue 14 added: how long ``s3repo stat`` takes, start to exit.

A shell loop runs the command once per file, so its start-up is most of its cost. Each
repetition of a side times one process, from its start to its exit, against the run's
server (moto in the runner's process, the JuiceFS gateway in its own), configured only
by the server's ``AWS_*`` variables, as a user's would be:

- **ours**: the installed entry point, ``s3repo stat DIGEST --repo s3r://BUCKET/PREFIX``
  (the ``s3repo`` beside the worker's Python);
- **floor**: ``python -c`` that imports botocore, builds an S3 client and sends the same
  HEAD: the least any Python command that stats an object does.

Both run with their bytecode cached, as an installed command's is (pip compiles it),
even where ``PYTHONDONTWRITEBYTECODE`` is set: the cache is kept in the run's workdir
(``PYTHONPYCACHEPREFIX``, so nothing is written beside the sources), and the case's
prepare runs each command once, untimed, to fill it.

The cases of the other commands time a whole ``s3repo`` process too, configured as a
user's would be: ``S3REPO_URL`` and the server's ``AWS_*`` variables. The command has no
flag for its concurrency, so it uses the repository's default (:data:`CONCURRENCY`, 8, the
full run's too), and every peer of these cases is given the same:

- **cli_put_dir_2k**: ``s3repo put DIR`` of the 2,000 files of 16 KiB to a prefix of its
  own each repetition (nothing stored: nothing is deduplicated), against ``put_files``
  of the same paths in the worker (the library in a process that is already running)
  and ``s5cmd cp DIR/ s3://BUCKET/PREFIX/`` (``--numworkers`` of that concurrency);
- **cli_verify_all**: ``s3repo verify --all`` of a repository of the 200 files of 1 MiB
  (stored, and read once, by the case's prepare), against boto3 ``get_object`` of the
  same keys from a thread pool of that concurrency in the worker, each body read to
  its end, unverified. Ours also lists the repository, as it must to find the objects.
  Beside it, the same reads from a ``python -c`` process (boto3 imported, a client
  built, the pool run), so that both sides pay for starting a Python process;
- **verify_library**: ``verify()`` of that repository in the worker (the library in a
  process that is already running: read throughput without any start-up), against the
  same boto3 pool in the worker.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from s3repo_core import Digest
from s3repo_core._names import Layout
from s3repo_core._s3repository import DEFAULT_CONCURRENCY

from . import s5cmd
from .cases12 import copied, large_dir, own_prefix, paths_in, small_dir
from .context import Env
from .processes import run_measured

#: The prefix of the repository the object is stated in.
PREFIX = "cli-stat"
#: The prefix of the repository that ``s3repo verify --all`` reads.
VERIFY_PREFIX = "cli-verify"
#: The concurrency of every side of the cases of put and verify: the command's.
CONCURRENCY = DEFAULT_CONCURRENCY
#: Bytes read at a time, by verify (``s3repo_core._verify.CHUNK``) and its peer.
CHUNK = 1024 * 1024
#: How long one run of a command may take.
TIMEOUT = 600
_BODY = b"issue 14: s3repo stat starts like a bare botocore process\n"
#: boto3 get_object of each key named on stdin, from a thread pool, each body read to its
#: end: :func:`verify_boto3` as a process of its own.
_READ_ALL = (
    "import sys, boto3\n"
    "from concurrent.futures import ThreadPoolExecutor\n"
    "bucket, workers, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "client = boto3.client('s3')\n"
    "def read(key):\n"
    "    body = client.get_object(Bucket=bucket, Key=key)['Body']\n"
    "    count = 0\n"
    "    while data := body.read(chunk):\n"
    "        count += len(data)\n"
    "    return count\n"
    "with ThreadPoolExecutor(workers) as pool:\n"
    "    print(sum(pool.map(read, sys.stdin.read().split())))\n"
)
_FLOOR = (
    "import sys, botocore.session\n"
    "client = botocore.session.get_session().create_client('s3')\n"
    "client.head_object(Bucket=sys.argv[1], Key=sys.argv[2])\n"
)


def entry_point() -> Path:
    """The installed ``s3repo`` command of the worker's environment."""
    path = Path(sys.executable).with_name("s3repo")
    if not path.exists():
        raise RuntimeError(f"no s3repo entry point beside {sys.executable}: pip install -e .")
    return path


def _commands(env: Env) -> dict[str, list[str]]:
    digest = Digest.of(_BODY)
    bucket = env.bucket or ""
    return {
        "ours": [str(entry_point()), "stat", str(digest), "--repo", f"s3r://{bucket}/{PREFIX}"],
        "floor": [sys.executable, "-c", _FLOOR, bucket, Layout(PREFIX).object_key(digest)],
    }


def _environ(env: Env, prefix: str | None = None) -> dict[str, str]:
    """The worker's environment (the server's AWS_* variables), bytecode cached; and
    ``S3REPO_URL`` naming the repository at ``prefix``, if given."""
    environ = {**os.environ, "PYTHONPYCACHEPREFIX": str(env.workdir / "pycache")}
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if prefix is not None:
        environ["S3REPO_URL"] = f"s3r://{env.bucket}/{prefix}"
    return environ


def _run(env: Env, side: str) -> int | None:
    """Run ``side``'s stat command once; its peak RSS. An error unless it stated the
    object."""
    out, peak = run_measured(_commands(env)[side], _environ(env), 60)
    if side == "ours" and str(Digest.of(_BODY)) not in out:
        raise RuntimeError(f"s3repo stat printed {out!r}")
    return peak


def s3repo(env: Env, prefix: str, *args: str) -> str:
    """Run ``s3repo ARGS`` on the repository at ``prefix`` (``S3REPO_URL``); what it
    printed. Its peak RSS is the side's memory (the worker only waits for it)."""
    out, env.memory = run_measured([str(entry_point()), *args], _environ(env, prefix), TIMEOUT)
    return out


def prepare_stat(env: Env) -> dict[str, Any]:
    """The object, stored untimed; each command run once, to cache its bytecode."""
    key = Layout(PREFIX).object_key(Digest.of(_BODY))
    env.setup_client.put_object(Bucket=env.bucket, Key=key, Body=_BODY)
    for side in ("ours", "floor"):
        _run(env, side)
    return {}


def _timed(side: str) -> Callable[[Env], float]:
    def run(env: Env) -> float:
        with env.measure():
            env.memory = _run(env, side)
        return 1.0

    run.__name__ = f"stat_{side}"
    return run


#: ``s3repo stat`` of one object, a process from start to exit.
stat_ours = _timed("ours")
#: botocore's import, an S3 client and one HEAD, in a ``python -c`` process.
stat_floor = _timed("floor")


# -- s3repo put DIR ---------------------------------------------------------------------------


def _check_put(paths: list[Path], digests: list[str], who: str) -> None:
    if len(digests) != len(paths) or len(set(digests)) != len(paths):
        raise AssertionError(f"{who} gave {len(set(digests))} digests for {len(paths)} files")


def prepare_put(env: Env) -> dict[str, Any]:
    """``s3repo put`` of two files, untimed and removed: it caches the command's
    bytecode."""
    with own_prefix(env, "warm") as prefix:
        s3repo(env, prefix, "put", *map(str, paths_in(small_dir(env))[:2]))
    return {}


def put_dir_ours(env: Env) -> float:
    """``s3repo put DIR``: a process, from start to exit."""
    folder = small_dir(env)
    paths = paths_in(folder)
    with own_prefix(env, "ours") as prefix, env.measure():
        out = s3repo(env, prefix, "put", str(folder))
    _check_put(paths, [line.split()[0] for line in out.splitlines()], "s3repo put")
    return len(paths)


def put_dir_library(env: Env) -> float:
    """put_files of the same paths, in the worker."""
    paths = paths_in(small_dir(env))
    with own_prefix(env, "library") as prefix:
        repo = env.repo(prefix, client=env.built_client, concurrency=CONCURRENCY)
        with env.measure():
            files = repo.put_files(paths)
    _check_put(paths, [str(file.digest) for file in files], "put_files")
    return len(paths)


def put_dir_s5cmd(env: Env) -> float:
    """``s5cmd cp DIR/ s3://BUCKET/PREFIX/``."""
    folder = small_dir(env)
    paths = paths_in(folder)
    with own_prefix(env, "s5cmd") as prefix, env.measure():
        out, env.memory = s5cmd.run(
            ["cp", f"{folder}/", f"s3://{env.bucket}/{prefix}/"], env.endpoint, CONCURRENCY
        )
    if copied(out) != len(paths):
        raise AssertionError(f"s5cmd cp copied {copied(out)} of {len(paths)} files")
    return len(paths)


# -- s3repo verify --all ----------------------------------------------------------------------


def prepare_verify(env: Env) -> dict[str, Any]:
    """The repository: the larger files, stored untimed; then ``s3repo verify --all``
    once, untimed, which caches its bytecode and reads each object once (the JuiceFS
    gateway's first read of a new object is slow, and would fall on one side)."""
    repo = env.repo(VERIFY_PREFIX, client=env.setup_client)
    files = repo.put_files(paths_in(large_dir(env)))
    s3repo(env, VERIFY_PREFIX, "verify", "--all")
    return {
        "keys": [repo.layout.object_key(file.digest) for file in files],
        "bytes": sum(file.size for file in files),
    }


def verify_ours(env: Env) -> float:
    """``s3repo verify --all``: a process, from start to exit."""
    keys, size = env.params["keys"], env.params["bytes"]
    with env.measure():
        out = s3repo(env, VERIFY_PREFIX, "verify", "--all", "--json")
    report = json.loads(out)
    if (report["checked"], report["bytes_read"]) != (len(keys), size) or any(
        report[name] for name in ("corrupt", "truncated", "missing", "unconfirmed")
    ):
        raise AssertionError(f"s3repo verify --all reported {report}")
    return float(size)


def verify_boto3(env: Env) -> float:
    """get_object of each key from a thread pool, each body read to its end."""
    client, bucket = env.client, env.bucket
    keys, size = env.params["keys"], env.params["bytes"]

    def read(key: str) -> int:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        count = 0
        while chunk := body.read(CHUNK):
            count += len(chunk)
        return count

    with ThreadPoolExecutor(CONCURRENCY) as pool, env.measure():
        count = sum(pool.map(read, keys))
    if count != size:
        raise AssertionError(f"read {count} bytes of {size}")
    return float(size)


def verify_boto3_process(env: Env) -> float:
    """:func:`verify_boto3` in a ``python -c`` process of its own, from start to exit."""
    keys, size = env.params["keys"], env.params["bytes"]
    command = [sys.executable, "-c", _READ_ALL, env.bucket or "", str(CONCURRENCY), str(CHUNK)]
    with env.measure():
        out, env.memory = run_measured(command, _environ(env), TIMEOUT, stdin="\n".join(keys))
    if int(out) != size:
        raise AssertionError(f"the boto3 process read {out.strip()} bytes of {size}")
    return float(size)


def verify_library(env: Env) -> float:
    """``verify()`` of the whole repository, in the worker."""
    keys, size = env.params["keys"], env.params["bytes"]
    repo = env.repo(VERIFY_PREFIX, client=env.built_client, concurrency=CONCURRENCY)
    with env.measure():
        report = repo.verify()
    if (report.checked, report.bytes_read) != (len(keys), size) or report.failed:
        raise AssertionError(f"verify() reported {report.to_dict()}")
    return float(size)
