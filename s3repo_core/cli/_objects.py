"""The commands on objects: put, get, stat, ls, du and cp."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._digest import Digest, File
from .._errors import IntegrityError, InvalidArgumentError, NotExistError
from ._output import CountingReader, Output, Progress, human_size

__all__ = ["MISSING", "cp", "du", "get", "ls", "put", "stat"]

#: The exit code of a digest asked for and not stored (as ``cli.EXIT_CODES`` says).
MISSING = 3

CHUNK = 1024 * 1024


def _files_under(paths: list[str]) -> Iterator[tuple[Path, int]]:
    """(path, size) of each file named, and of every file under each directory named,
    in sorted order; symbolic links to directories are not followed (no loops)."""
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            yield path, path.stat().st_size  # a missing path: its OSError (exit 5)
            continue
        for root, dirs, files in os.walk(path, onerror=_raise):
            dirs.sort()
            for file in sorted(files):
                full = Path(root, file)
                info = full.stat()
                if full.is_file():
                    yield full, info.st_size


def _raise(error: OSError) -> None:
    raise error


def put(repo: Any, args: argparse.Namespace, out: Output) -> None:
    if "-" in args.paths:
        if len(args.paths) > 1:
            raise InvalidArgumentError("'-' (stdin) is put on its own, not with other paths")
        _put_stdin(repo, args, out)
        return
    found = list(_files_under(args.paths))
    paths = [path for path, _ in found]
    started = time.monotonic()
    if len(found) == 1:
        files = [_put_one(repo, paths[0])]
    else:
        with Progress("put", sum(size for _, size in found)) as progress:
            files = repo.put_files(
                paths, on_stored=lambda _, file: progress.add(file.size, objects=1)
            )
    rows = [(file, str(path)) for path, file in zip(paths, files, strict=True)]
    if args.manifest:
        _write_record(repo, args, rows, started)
    out.result(
        {"files": [{"digest": str(f.digest), "size": f.size, "path": p} for f, p in rows]},
        (f"{file.digest}  {file.size}  {path}" for file, path in rows),
    )


def _put_one(repo: Any, path: Path) -> File:
    """One file, with progress through both of put's passes (hash, then upload)."""
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        with Progress("hash", size) as progress:
            digest = repo.put(CountingReader(source, progress))
    return File(digest, size)


def _put_stdin(repo: Any, args: argparse.Namespace, out: Output) -> None:
    started = time.monotonic()
    with Progress("put") as progress:
        reader = CountingReader(sys.stdin.buffer, progress)
        digest = repo.put(reader)
    size = repo.stat(digest).size
    if args.manifest:
        _write_record(repo, args, [(File(digest, size), "-")], started)
    out.result({"files": [{"digest": str(digest), "size": size, "path": "-"}]}, [str(digest)])


def _write_record(
    repo: Any, args: argparse.Namespace, rows: list[tuple[File, str]], started: float
) -> None:
    from ..manifest import ManifestRow
    from ..records import write_record_manifest

    if not rows:
        raise InvalidArgumentError("nothing was put, so there is no record to write")
    write_record_manifest(
        repo,
        args.manifest,
        [ManifestRow(file.digest, file.size, args.source or path) for file, path in rows],
        started=started,
        created_by="s3repo put",
    )


def _writable_destination(output: str) -> Path:
    """``output`` as a path a download can be renamed to; OSError if it cannot be."""
    dest = Path(output)
    if dest.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", output)
    parent = dest.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"directory {str(parent)!r} does not exist", output)
    return dest


def _parse_all(texts: list[str]) -> list[Digest]:
    """Every digest, each parsed before any request (a bad one changes nothing)."""
    return list(dict.fromkeys(Digest.parse(text) for text in texts))


def get(repo: Any, args: argparse.Namespace, out: Output) -> None:
    digests = _parse_all(args.digests)
    if args.directory is not None:
        _get_into(repo, digests, Path(args.directory), out)
        return
    if len(digests) > 1:
        raise InvalidArgumentError("several digests are written into a directory: give -d DIR")
    digest = digests[0]
    if args.output != "-":
        dest = _writable_destination(args.output)
        with Progress(f"get {digest.hex[:12]}", _size_if_shown(repo, digest)) as progress:
            try:
                size = repo.get_file(digest, dest, on_progress=progress.add)
            except NotExistError:
                _writable_destination(args.output)  # the directory went away meanwhile?
                raise
        if out.as_json:
            out.result({"digest": str(digest), "size": size, "path": str(dest)})
        return
    if out.as_json:
        raise InvalidArgumentError("--json prints JSON on stdout: give -o PATH or -d DIR")
    stdout = sys.stdout.buffer
    with repo.get(digest) as stream, Progress("get") as progress:
        while chunk := stream.read(CHUNK):
            stdout.write(chunk)
            progress.add(len(chunk))
    stdout.flush()


def _size_if_shown(repo: Any, digest: Digest) -> int | None:
    """The object's size for a progress bar's total: a request only on a terminal."""
    return repo.stat(digest).size if sys.stderr.isatty() else None


def _get_into(repo: Any, digests: list[Digest], directory: Path, out: Output) -> None:
    from .._stat import stat_many

    if not directory.is_dir():
        raise FileNotFoundError(errno.ENOENT, "not a directory", str(directory))
    files = stat_many(repo, digests)  # NotExistError naming every missing one
    written: list[dict[str, Any]] = []
    with (
        Progress("get", sum(f.size for f in files)) as progress,
        ThreadPoolExecutor(min(8, len(files)), thread_name_prefix="s3repo-cli-get") as pool,
    ):

        def one(file: File) -> dict[str, Any]:
            dest = directory / file.digest.hex
            size = repo.get_file(file.digest, dest, on_progress=progress.add)
            return {"digest": str(file.digest), "size": size, "path": str(dest)}

        written = list(pool.map(one, files))
    out.result({"files": written}, (f"{w['digest']}  {w['size']}  {w['path']}" for w in written))


def stat(repo: Any, args: argparse.Namespace, out: Output) -> int:
    digests = _parse_all(args.digests)

    def look(digest: Digest) -> File | None:
        try:
            return repo.stat(digest)  # type: ignore[no-any-return]
        except NotExistError:
            return None

    with ThreadPoolExecutor(min(16, len(digests)), thread_name_prefix="s3repo-cli-stat") as pool:
        found = list(pool.map(look, digests))
    files = [file for file in found if file is not None]
    missing = [digest for digest, file in zip(digests, found, strict=True) if file is None]
    out.result(
        {
            "files": [{"digest": str(f.digest), "size": f.size} for f in files],
            "missing": [str(digest) for digest in missing],
        },
        (f"{file.digest} {file.size}" for file in files),
    )
    if missing:
        sys.stdout.flush()
        for digest in missing:
            print(f"s3repo: error: {digest} is not in {repo}", file=sys.stderr)
        return MISSING
    return 0


def ls(repo: Any, args: argparse.Namespace, out: Output) -> None:
    for item in repo.list_objects(args.shard):
        if args.long:
            line = f"{item.digest}  {item.size:>12}  {item.modified.isoformat()}"
        else:
            line = str(item.digest)
        out.item(item.to_dict(), line)


def du(repo: Any, args: argparse.Namespace, out: Output) -> None:
    summary = repo.summary(by_shard=args.by_shard)
    data = summary.to_dict()
    data["repository"] = str(repo)

    def row(name: str, count: int, size: int | None) -> str:
        shown = "" if size is None else f"{size:>14}  {human_size(size)}"
        return f"{name:<16}{count:>12}  {shown}".rstrip()

    lines = [
        f"{repo}",
        row("objects", summary.objects.count, summary.objects.bytes),
        *(
            row(f"  shard {name}", total.count, total.bytes)
            for name, total in summary.shards.items()
        ),
        row("other keys", summary.other.count, summary.other.bytes),
        row("uploads", summary.uploads.count, summary.uploads.bytes),
        row("multipart", summary.pending_uploads, None),
        row("leases", summary.leases.count, summary.leases.bytes),
        row("touch records", summary.touch_records.count, summary.touch_records.bytes),
        row("quarantine", summary.quarantine.count, summary.quarantine.bytes),
    ]
    out.result(data, lines)


def cp(repo: Any, args: argparse.Namespace, out: Output) -> None:
    from .._dial import dial
    from .._transfer import copies_server_side, transfer

    digests = _parse_all(args.digests)
    target = dial(args.to)
    server_side = copies_server_side(repo, target)
    copied: list[dict[str, Any]] = []
    with Progress("cp", len(digests), unit="obj") as progress:
        for digest in digests:
            if server_side and not args.no_verify:
                _check_source(repo, digest)
            transfer(digest, repo, target)
            copied.append({"digest": str(digest), "to": str(target), "server_side": server_side})
            progress.add()
    out.result({"copied": copied}, (f"{c['digest']}  {c['to']}" for c in copied))


def _check_source(repo: Any, digest: Digest) -> None:
    """Read the source through this process: a corrupt one is never copied on."""
    report = repo.verify([digest])
    if report.missing:
        raise NotExistError(f"{digest} is not in {repo}", digest=digest)
    if report.corrupt or report.truncated:
        raise IntegrityError(
            f"{digest} is corrupt in {repo}: its bytes do not hash to it; not copied "
            "(s3repo verify --quarantine moves it aside, so that a put stores it again)",
            digest=digest,
        )
