"""The command line's grammar: every command, option and help text, and nothing else.

Building the parser imports only argparse and the client's defaults, so that ``--help``
and shell completion cost no more than Python's start.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from .._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    LONG_READ_TIMEOUT,
)

__all__ = ["build_parser", "version"]

DESCRIPTION = """\
Put, get, list, verify and collect the objects of a content-addressed repository on S3,
and write and read the manifests that keep them live.
Objects are named by the SHA-256 of their bytes: sha256:<64 lowercase hex>.

The repository is --repo s3r://BUCKET/PREFIX (or file:///DIR), or $S3REPO_URL. The
endpoint, region and credentials come from boto3's standard configuration:
AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), AWS_REGION, AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, ~/.aws/...
"""

_WAITS = f"{DEFAULT_CONNECT_TIMEOUT:g} s to connect and {DEFAULT_READ_TIMEOUT:g} s"

EPILOG = f"""\
examples:
  export S3REPO_URL=s3r://my-bucket/artifacts
  s3repo put model.bin data/                store files and trees: digest, size, path
  tar c data/ | s3repo put -                store stdin (any length), print its digest
  s3repo put data/ --manifest s3://my-bucket/manifests/data.parquet
                                            ... and record what was put as live
  s3repo stat sha256:<hex> sha256:<hex>     digests and sizes; exit 3 if one is missing
  s3repo get sha256:<hex> -o model.bin      download to a file (verified, then renamed)
  s3repo get sha256:<hex> > model.bin       write the bytes to stdout
  s3repo get sha256:<a> sha256:<b> -d out/  download several into a directory
  s3repo ls --shard 3a --long               digests, sizes and times, streamed
  s3repo du --by-shard                      objects and bytes, uploads, leases
  s3repo verify --all --quarantine          re-hash everything; move corrupt objects
  s3repo collect --manifests s3://my-bucket/manifests/
                                            what a collection would delete (--delete does)
  s3repo manifest show s3://my-bucket/manifests/data.parquet
  s3repo cp sha256:<hex> --to s3r://other-bucket/mirror
                                            copy to another repository, verified
  s3repo why sha256:<hex> --manifests s3://my-bucket/manifests/
                                            which manifests keep the object live
  s3repo protocol --enable-touch-records    once every collector runs this version:
                                            keep stored content with one write a batch
  s3repo --json du                          any command's result as JSON on stdout

timeouts and retries:
  Each request waits {_WAITS} for each read of the response, and is
  tried {DEFAULT_MAX_ATTEMPTS} times in all: a dead endpoint fails within about a minute.
  Copies and multipart completions, which a server may take minutes over, wait
  {LONG_READ_TIMEOUT:g} s for their response. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE (or
  max_attempts and retry_mode in the profile of ~/.aws/config) change the attempts;
  --timeout and --retries override both. Each retry is reported on stderr.

progress:
  Long commands draw a progress bar (rate and time left) on stderr when it is a
  terminal, and nothing when it is a pipe or a file.

shell completion (argcomplete):
  eval "$(register-python-argcomplete s3repo)"      in ~/.bashrc or ~/.zshrc

exit codes:
  0 success
  1 any other error (the endpoint unreachable, refusing, or not S3...)
  2 invalid arguments (bad digest or URL, unsupported URL scheme, usage)
  3 an object, manifest or bucket does not exist (stat, get, verify: any of those asked)
  4 integrity: bytes do not match their digest (get, cp; verify found corrupt objects)
  5 a local file or directory is missing, unreadable or not writable
  6 collect: the store refused to delete some keys, or another collection holds a shard
"""


def version() -> str:
    """The installed distribution's version (what ``pip`` shows)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("s3repo")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _number(convert: Callable[[str], Any], accept: Callable[[Any], bool], what: str) -> Any:
    """An argparse type: ``convert(text)`` if ``accept`` takes it, else a usage error."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}")
        return value

    return parse


seconds = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number of seconds")
count = _number(int, lambda v: v >= 0, "a whole number >= 0")
fraction = _number(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")


def _add_common(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--repo",
        metavar="URL",
        default=default,
        help="the repository, s3r://BUCKET/PREFIX or file:///DIR (default: $S3REPO_URL)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="print the result as JSON on stdout (ls: one JSON object per line); errors "
        'too, as {"error": {...}}',
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds,
        default=default,
        help=f"wait this long to connect and for each read of a response (default: "
        f"{DEFAULT_CONNECT_TIMEOUT:g} s and {DEFAULT_READ_TIMEOUT:g} s)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=count,
        default=default,
        help="retry a failed request at most N times (default: AWS_MAX_ATTEMPTS - 1, "
        f"else {DEFAULT_MAX_ATTEMPTS - 1})",
    )


_DIGEST = "sha256:<64 lowercase hex>"
_MANIFEST_LOCATIONS = (
    "manifest files, directories, s3://bucket/key or s3://bucket/prefix/ (ending in "
    "'/': every .parquet under it)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3repo", description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter
    )
    parser.add_argument("--version", action="version", version=f"s3repo {version()}")
    _add_common(parser, None)
    # The options are accepted after the subcommand too; SUPPRESS keeps them from
    # resetting the value given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, example: str, within: Any = commands
    ) -> argparse.ArgumentParser:
        return within.add_parser(  # type: ignore[no-any-return]
            name,
            parents=[common],
            help=summary,
            description=f"{summary}\n\nexample:\n  {example}",
            formatter_class=_formatter,
        )

    put = command(
        "put",
        "store files, directories (recursively) or stdin ('-'); print digest, size, path",
        "s3repo put model.bin data/       or   tar c data/ | s3repo put -",
    )
    put.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        help="files and directories to store; '-' alone reads stdin and prints its digest",
    )
    put.add_argument(
        "--manifest",
        metavar="DEST",
        help="then write a record manifest naming every object put (a local path or "
        "s3://bucket/key.parquet): collections against it keep them",
    )
    put.add_argument(
        "--source",
        metavar="TEXT",
        default="",
        help="the source column of the manifest's rows (default: each file's path)",
    )

    get = command(
        "get",
        "write objects' bytes to stdout, a file or a directory, verifying them",
        "s3repo get sha256:<hex> -o model.bin     or   s3repo get DIGEST... -d out/",
    )
    get.add_argument("digests", metavar="DIGEST", nargs="+", help=_DIGEST)
    where = get.add_mutually_exclusive_group()
    where.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default="-",
        help="write the one object to this file, replaced only once the bytes verify; "
        "'-' (the default) is stdout, where the bytes are verified as they stream: exit "
        "code 4 after them means they were corrupt",
    )
    where.add_argument(
        "-d",
        "--directory",
        metavar="DIR",
        help="write each object to DIR/<64 hex digits>, concurrently; every digest is "
        "looked up first, and nothing is written if one is missing",
    )

    stat = command(
        "stat",
        "print each object's digest and size in bytes; exit 3 if any is missing",
        "s3repo stat sha256:<hex> sha256:<hex>",
    )
    stat.add_argument("digests", metavar="DIGEST", nargs="+", help=_DIGEST)

    ls = command(
        "ls",
        "list the stored objects in digest order, streamed from the listing",
        "s3repo ls --shard 3a --long",
    )
    ls.add_argument(
        "--shard",
        metavar="HEX",
        action="append",
        help="only digests starting with these 1-4 hex digits (repeatable)",
    )
    ls.add_argument(
        "-l", "--long", action="store_true", help="also print each size and last-modified time"
    )

    du = command(
        "du",
        "count the objects and bytes stored, and what else the repository holds",
        "s3repo du --by-shard",
    )
    du.add_argument(
        "--by-shard", action="store_true", help="also per first hex digit of the digest"
    )

    verify = command(
        "verify",
        "re-hash stored objects; report corrupt, truncated and missing ones (exit 4)",
        "s3repo verify --all     or   s3repo verify --manifests s3://bucket/manifests/",
    )
    verify.add_argument("digests", metavar="DIGEST", nargs="*", help=_DIGEST)
    verify.add_argument("--all", action="store_true", help="every stored object")
    verify.add_argument(
        "--manifests",
        metavar="LOCATION",
        nargs="+",
        help=f"every object these manifests name, at the size they give: {_MANIFEST_LOCATIONS}",
    )
    verify.add_argument(
        "--shard",
        metavar="HEX",
        action="append",
        help="with --all: only digests starting with these hex digits (repeatable)",
    )
    verify.add_argument(
        "--sample",
        metavar="FRACTION",
        type=fraction,
        help="check each object with this probability, e.g. 0.01 for about 1 in 100",
    )
    verify.add_argument(
        "--quarantine",
        action="store_true",
        help="move each corrupt object, once a second read confirms it, out of objects/ "
        "(to quarantine/, which collection purges after the grace), so that the next "
        "put of the right bytes stores it again; done under a collection lease",
    )

    collect = command(
        "collect",
        "delete what no manifest keeps and is older than the grace (a dry run unless --delete)",
        "s3repo collect --manifests s3://bucket/manifests/ --delete",
    )
    collect.add_argument(
        "--manifests",
        metavar="LOCATION",
        nargs="+",
        required=True,
        help=f"the liveset: {_MANIFEST_LOCATIONS}; every one must read, or nothing is deleted",
    )
    collect.add_argument(
        "--records",
        metavar="LOCATION",
        nargs="+",
        default=[],
        help="record manifests that may hold none yet (where an IO manager writes them)",
    )
    collect.add_argument(
        "--inventory",
        metavar="LOCATION",
        help="take the candidates from an S3 Inventory report of the bucket instead of "
        "listing it: its s3://.../manifest.json, or the prefix S3 writes reports under "
        "(ending in '/': the newest); each is looked at again before it is deleted",
    )
    collect.add_argument(
        "--delete", action="store_true", help="delete; without it, only report what would go"
    )
    collect.add_argument(
        "--grace",
        metavar="SECONDS",
        type=seconds,
        help="keep what was modified this long before the oldest snapshot manifest "
        "(default and shortest allowed: the repository's grace)",
    )

    manifest = commands.add_parser(
        "manifest",
        help="write, show or merge manifests: the lists of digests that keep objects live",
        description="Write, show or merge manifests (Parquet files of digest, size and "
        "source) that collections read as the liveset.",
        formatter_class=_formatter,
    )
    actions = manifest.add_subparsers(dest="action", metavar="ACTION", required=True)
    write = command(
        "write",
        "write a record manifest naming stored objects, kept as if put just now",
        "s3repo manifest write s3://bucket/manifests/run-7.parquet sha256:<hex>...",
        actions,
    )
    write.add_argument("dest", metavar="DEST", help="a local path or s3://bucket/key.parquet")
    write.add_argument("digests", metavar="DIGEST", nargs="+", help=_DIGEST)
    write.add_argument("--source", metavar="TEXT", default="", help="each row's source column")
    write.add_argument(
        "--label",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a label in the manifest's metadata (repeatable), as retention groups by",
    )
    show = command(
        "show",
        "print a manifest's kind, creation, labels and rows",
        "s3repo manifest show s3://bucket/manifests/run-7.parquet",
        actions,
    )
    show.add_argument("location", metavar="LOCATION", help="a manifest file or s3://bucket/key")
    show.add_argument(
        "--head", metavar="N", type=count, help="print only the first N rows (default: all)"
    )
    merge = command(
        "merge",
        "merge manifests of one kind into one, keeping the oldest creation time",
        "s3repo manifest merge s3://bucket/manifests/2026-11/ --to merged.parquet",
        actions,
    )
    merge.add_argument("sources", metavar="LOCATION", nargs="+", help=_MANIFEST_LOCATIONS)
    merge.add_argument("--to", metavar="DEST", required=True, help="where to write the merge")

    cp = command(
        "cp",
        "copy objects into another repository, verified; server-side when it can",
        "s3repo cp sha256:<hex> --to s3r://other-bucket/mirror",
    )
    cp.add_argument("digests", metavar="DIGEST", nargs="+", help=_DIGEST)
    cp.add_argument("--to", metavar="URL", required=True, help="the destination repository")
    cp.add_argument(
        "--no-verify",
        action="store_true",
        help="skip reading a server-side copy's source first (copies through this process "
        "are always verified)",
    )

    protocol = command(
        "protocol",
        "show which collection protocol the repository's collectors follow, or raise it",
        "s3repo protocol --enable-touch-records",
    )
    protocol.add_argument(
        "--enable-touch-records",
        action="store_true",
        help="state that every collector of the repository runs this s3repo or later, so "
        "that writers keep stored content with one touch record per batch instead of a "
        "copy per object; an older collector would ignore the records and delete "
        "content writers were told is stored, so enable it only once none runs",
    )
    why = command(
        "why",
        "say which manifests keep an object live: each one that names its digest",
        "s3repo why sha256:<hex> --manifests s3://bucket/manifests/ ./records/",
    )
    why.add_argument("digest", metavar="DIGEST", help=_DIGEST)
    why.add_argument(
        "--manifests",
        metavar="LOCATION",
        nargs="+",
        required=True,
        help=f"{_MANIFEST_LOCATIONS}, as a collection would read them",
    )
    return parser
