"""The commands on manifests: manifest write, show and merge, and why."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .._digest import Digest
from .._errors import InvalidArgumentError, NotExistError
from ._output import Output

__all__ = ["manifest", "why"]


def _info(info: Any) -> dict[str, Any]:
    return {
        "location": info.location,
        "kind": info.kind,
        "rows": info.num_rows,
        "created_at": info.created_at.isoformat(),
        "created_by": info.created_by,
        "labels": dict(info.labels),
    }


def _info_lines(info: Any) -> list[str]:
    labels = " ".join(f"{name}={value}" for name, value in sorted(info.labels.items()))
    return [
        f"{info.location}: a {info.kind} of {info.num_rows} rows, created "
        f"{info.created_at.isoformat()} by {info.created_by}",
        *([f"labels: {labels}"] if labels else []),
    ]


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidArgumentError(f"a label is NAME=VALUE, got {pair!r}")
        labels[name] = value
    return labels


def manifest(repo: Any, args: argparse.Namespace, out: Output) -> None:
    {"write": _write, "show": _show, "merge": _merge}[args.action](repo, args, out)


def _write(repo: Any, args: argparse.Namespace, out: Output) -> None:
    from ..records import write_record_manifest

    digests = list(dict.fromkeys(Digest.parse(text) for text in args.digests))
    labels = _labels(args.label)
    started = time.monotonic()
    files = repo.keep(digests)  # kept as a put would: NotExistError if one is missing
    info = write_record_manifest(
        repo,
        args.dest,
        files,
        started=started,
        source=args.source,
        created_by="s3repo manifest write",
        labels=labels,
    )
    out.result(_info(info), _info_lines(info))


def _show(repo: Any, args: argparse.Namespace, out: Output) -> None:
    from ..manifest import ManifestInfo, read_manifest

    found = read_manifest(args.location)
    info = ManifestInfo(
        found.location,
        found.num_rows,
        found.created_at,
        found.created_by,
        found.kind,
        found.labels,
    )
    rows = []
    for number, row in enumerate(found):
        if args.head is not None and number >= args.head:
            break
        rows.append(row)
    out.result(
        {
            **_info(info),
            "rows_shown": [
                {"digest": str(r.digest), "size": r.size, "source": r.source} for r in rows
            ],
        },
        [*_info_lines(info), *(f"{r.digest}  {r.size}  {r.source}".rstrip() for r in rows)],
    )


def _merge(repo: Any, args: argparse.Namespace, out: Output) -> None:
    from ..compaction import merge_manifests

    info = merge_manifests(args.sources, args.to, created_by="s3repo manifest merge")
    out.result(_info(info), _info_lines(info))


def why(repo: Any, args: argparse.Namespace, out: Output) -> None:
    from ..manifest import manifests_naming

    digest = Digest.parse(args.digest)
    try:
        size: int | None = repo.stat(digest).size
        stored = f"stored, {size} bytes"
    except NotExistError:
        size, stored = None, "not stored"
    naming = manifests_naming(digest, args.manifests)
    lines = [f"{digest}: {stored}; named by {len(naming)} manifests"]
    for info in naming:
        labels = " ".join(f"{name}={value}" for name, value in sorted(info.labels.items()))
        lines.append(
            f"  {info.location}  {info.kind}  {info.created_at.isoformat()}  {labels}".rstrip()
        )
    if not naming:
        lines.append("  no manifest names it: a collection against these deletes it once it is old")
    out.result(
        {"digest": str(digest), "size": size, "manifests": [_info(info) for info in naming]}, lines
    )
