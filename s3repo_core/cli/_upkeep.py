"""The commands that look after a repository: verify, collect and protocol."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from .._digest import Digest, File
from .._errors import InvalidArgumentError
from ._output import Output, Progress, human_size

__all__ = ["INTEGRITY_FAILED", "MISSING", "REFUSED", "collect", "protocol", "verify"]

#: Exit codes of these commands' findings (the README's table; see ``cli.EXIT_CODES``).
MISSING = 3
INTEGRITY_FAILED = 4
REFUSED = 6


def verify(repo: Any, args: argparse.Namespace, out: Output) -> int:
    asked = [bool(args.digests), args.all, bool(args.manifests)]
    if sum(asked) != 1:
        raise InvalidArgumentError(
            "say what to verify: DIGEST..., --all, or --manifests LOCATION... (one of them)"
        )
    if args.shard and not args.all:
        raise InvalidArgumentError("--shard goes with --all")
    files: Iterable[File | Digest] | None = None
    if args.digests:
        files = list(dict.fromkeys(Digest.parse(text) for text in args.digests))
    elif args.manifests:
        from ..manifest import manifest_rows

        # Streamed a manifest at a time; verify checks each digest once.
        files = (File(row.digest, row.size) for row in manifest_rows(args.manifests))
    with Progress("verify") as progress:
        report = repo.verify(
            files,
            shards=args.shard,
            sample=args.sample,
            quarantine=args.quarantine,
            on_checked=lambda _, size: progress.add(size, objects=1),
        )
    data = report.to_dict()
    data["repository"] = str(repo)
    lines = [report.summary()]
    for name in ("corrupt", "truncated", "missing", "quarantined", "unconfirmed"):
        lines.extend(f"  {name}: {digest}" for digest in getattr(report, name))
    out.result(data, lines)
    if report.corrupt or report.truncated:
        return INTEGRITY_FAILED
    return MISSING if report.missing else 0


def collect(repo: Any, args: argparse.Namespace, out: Output) -> int:
    from .._planning import plan_collection

    planned = plan_collection(
        repo,
        args.manifests,
        grace=None if args.grace is None else timedelta(seconds=args.grace),
        records=args.records,
    )
    client = getattr(repo, "client", None)
    inventory = None
    if args.inventory is not None:
        from ..inventory import find_inventory

        inventory = find_inventory(args.inventory, client=client)
    report = repo.collect(
        planned.read_liveset(client=client),
        threshold=planned.threshold,
        dry_run=not args.delete,
        raise_on_errors=False,
        inventory=inventory,
    )
    data = {
        "plan": {
            "manifests": list(planned.locations),
            "live_rows": planned.live_rows,
            "oldest_manifest": planned.oldest_manifest.isoformat(),
            "threshold": planned.threshold.isoformat(),
            "inventory": None if inventory is None else inventory.location,
        },
        "report": report.to_dict(),
    }
    lines = [planned.summary(), ""]
    lines.extend(
        f"{category:<48}{objects:>10}  {'' if size is None else human_size(size)}".rstrip()
        for category, objects, size in report.rows()
    )
    lines.extend(f"  refused: {e.key}: {e.code} {e.message}" for e in report.errors)
    if report.dry_run:
        lines.append("a dry run: nothing was deleted (--delete deletes)")
    out.result(data, lines)
    return REFUSED if report.failed else 0


def protocol(repo: Any, args: argparse.Namespace, out: Output) -> None:
    if args.enable_touch_records:
        repo.enable_touch_records()
    on = repo.touch_records_enabled()
    state = "on" if on else "off (writers refresh each object)"
    out.result({"repository": str(repo), "touch_records": on}, [f"{repo}: touch records {state}"])
