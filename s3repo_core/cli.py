"""The ``s3repo`` command: put, get, stat and copy objects of one repository, and say
why one is live.

The repository is ``--repo s3r://bucket/prefix`` or ``$S3REPO_URL``. The S3 endpoint,
region and credentials come from boto3's standard configuration (``AWS_ENDPOINT_URL_S3``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/``...); timeouts and retries from
``--timeout`` and ``--retries``, else that configuration, else s3repo's defaults (see
``s3repo_core._client``), and each retry is reported on stderr. Every error is printed
as ``s3repo: error: <message>`` with an exit code that tells its kind (see ``EXIT_CODES``,
``USAGE_ERROR`` and ``LOCAL_FILE_ERROR``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from . import (
    Digest,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    RepositoryError,
    dial,
    manifests_naming,
)
from ._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT,
    LONG_READ_TIMEOUT,
    make_client,
    using_client,
)

__all__ = ["EXIT_CODES", "LOCAL_FILE_ERROR", "USAGE_ERROR", "main"]

#: The exit code of each kind of repository error, most specific first; any other
#: error exits 1 (the store unreachable, refusing, or not S3).
EXIT_CODES: tuple[tuple[type[RepositoryError], int], ...] = (
    (InvalidArgumentError, 2),
    (NotExistError, 3),
    (IntegrityError, 4),
)
#: Bad usage: an unknown command or option, a bad digest or URL, an unsupported scheme.
USAGE_ERROR = 2
#: A local file or directory is missing, unreadable or unwritable (an OSError).
LOCAL_FILE_ERROR = 5
CHUNK = 1024 * 1024

DESCRIPTION = """\
Put, get, stat and copy the objects of a content-addressed repository on S3, and say
which manifests keep one live.
Objects are named by the SHA-256 of their bytes: sha256:<64 lowercase hex>.

The repository is --repo s3r://BUCKET/PREFIX, or $S3REPO_URL. The endpoint, region and
credentials come from boto3's standard configuration: AWS_ENDPOINT_URL_S3 (or
AWS_ENDPOINT_URL), AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/...
"""

_WAITS = f"{DEFAULT_CONNECT_TIMEOUT:g} s to connect and {DEFAULT_READ_TIMEOUT:g} s"

EPILOG = f"""\
examples:
  export S3REPO_URL=s3r://my-bucket/artifacts
  s3repo put model.bin                      store a file, print its digest
  tar c data/ | s3repo put -                store stdin (any length), print its digest
  s3repo stat sha256:<hex>                  print the digest and size in bytes
  s3repo get sha256:<hex> -o model.bin      download to a file (verified, then renamed)
  s3repo get sha256:<hex> > model.bin       write the bytes to stdout
  s3repo cp sha256:<hex> --to s3r://other-bucket/mirror
                                            copy to another repository
  s3repo protocol --enable-touch-records    once every collector runs this version:
                                            keep stored content with one write a batch
  s3repo why sha256:<hex> --manifests s3://my-bucket/manifests/
                                            which manifests keep the object live

timeouts and retries:
  Each request waits {_WAITS} for each read of the response, and is
  tried {DEFAULT_MAX_ATTEMPTS} times in all: a dead endpoint fails within about a minute.
  Copies and multipart completions, which a server may take minutes over, wait
  {LONG_READ_TIMEOUT:g} s for their response. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE (or
  max_attempts and retry_mode in the profile of ~/.aws/config) change the attempts;
  --timeout and --retries override both. Each retry is reported on stderr.

exit codes:
  0 success
  1 any other error (the endpoint unreachable, refusing, or not S3...)
  2 invalid arguments (bad digest or URL, unsupported URL scheme, usage)
  3 the object or bucket does not exist
  4 integrity: the bytes do not match their digest
  5 a local file or directory is missing, unreadable or not writable
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--repo",
        metavar="URL",
        default=default,
        help="the repository, s3r://BUCKET/PREFIX (default: $S3REPO_URL)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default,
        help=f"wait this long to connect and for each read of a response (default: "
        f"{DEFAULT_CONNECT_TIMEOUT:g} s and {DEFAULT_READ_TIMEOUT:g} s)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        type=_count,
        default=default,
        help="retry a failed request at most N times (default: AWS_MAX_ATTEMPTS - 1, "
        f"else {DEFAULT_MAX_ATTEMPTS - 1})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3repo", description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter
    )
    _add_common(parser, None)
    # The options are accepted after the subcommand too; SUPPRESS keeps them from
    # resetting the value given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=f"{summary}\n\nexample:\n  {example}",
            formatter_class=_formatter,
        )

    put = command(
        "put",
        "store a file, or stdin with '-', and print its digest",
        "s3repo put model.bin        or   tar c data/ | s3repo put -",
    )
    put.add_argument("file", metavar="FILE|-", help="the file to store; '-' reads stdin")
    get = command(
        "get",
        "write an object's bytes to stdout or to a file, verifying them",
        "s3repo get sha256:<hex> -o model.bin",
    )
    get.add_argument("digest", metavar="DIGEST", help="sha256:<64 lowercase hex>")
    get.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default="-",
        help="write to this file, replaced only once the bytes verify; '-' (the default) is "
        "stdout, where the bytes are verified as they stream: exit code 4 after them "
        "means they were corrupt",
    )
    stat = command("stat", "print an object's digest and size in bytes", "s3repo stat sha256:<hex>")
    stat.add_argument("digest", metavar="DIGEST", help="sha256:<64 lowercase hex>")
    cp = command(
        "cp",
        "copy an object into another repository, server-side when it can",
        "s3repo cp sha256:<hex> --to s3r://other-bucket/mirror",
    )
    cp.add_argument("digest", metavar="DIGEST", help="sha256:<64 lowercase hex>")
    cp.add_argument("--to", metavar="URL", required=True, help="the destination repository")
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
    why.add_argument("digest", metavar="DIGEST", help="sha256:<64 lowercase hex>")
    why.add_argument(
        "--manifests",
        metavar="LOCATION",
        nargs="+",
        required=True,
        help="manifest files, directories or s3://bucket/prefix/ (ending in '/'), as a "
        "collection would read them",
    )
    return parser


class _Progress:
    """Bytes done so far, redrawn on stderr at most a few times a second (ttys only)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._last > 0.2:
            self._last = now
            self._draw("")

    def close(self) -> None:
        if self.enabled and self._last:
            self._draw("\n")

    def restart(self, label: str) -> None:
        """End this phase's line and count the next one from zero."""
        self.close()
        self.label, self.done, self._last = label, 0, 0.0

    def _draw(self, end: str) -> None:
        mib = self.done / (1024 * 1024)
        of = f" of {self.total / (1024 * 1024):.1f} MiB" if self.total else " MiB"
        print(f"\r{self.label}: {mib:.1f}{of}", end=end, file=sys.stderr, flush=True)


class _CountingReader(io.RawIOBase):
    """A binary stream that reports how much is read from it, and is otherwise the stream.

    It keeps the stream's fileno, tell and seek, so that put still sees a regular file
    (hashed, then uploaded straight to its key) and not a stream of unknown length (sent
    to uploads/ and published with a server-side copy). Seeking back starts the upload.
    """

    def __init__(self, stream: BinaryIO, progress: _Progress) -> None:
        super().__init__()
        self._stream, self._progress = stream, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        self._progress.add(count or 0)
        return int(count or 0)

    def fileno(self) -> int:
        return self._stream.fileno()

    def seekable(self) -> bool:
        return self._stream.seekable()

    def tell(self) -> int:
        return self._stream.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._stream.seek(offset, whence)
        self._progress.restart("upload")
        return position


def _put(repo: Any, args: argparse.Namespace) -> None:
    if args.file == "-":
        source: BinaryIO = sys.stdin.buffer
        progress = _Progress("put", None)
        digest = repo.put(_CountingReader(source, progress))
    else:
        with open(args.file, "rb") as source:
            progress = _Progress("hash", os.fstat(source.fileno()).st_size)
            digest = repo.put(_CountingReader(source, progress))
    progress.close()
    print(digest)


def _writable_destination(output: str) -> Path:
    """``output`` as a path a download can be renamed to; OSError if it cannot be."""
    dest = Path(output)
    if dest.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", output)
    parent = dest.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"directory {str(parent)!r} does not exist", output)
    return dest


def _get(repo: Any, args: argparse.Namespace) -> None:
    digest = Digest.parse(args.digest)
    if args.output != "-":
        dest = _writable_destination(args.output)
        try:
            repo.get_file(digest, dest)
        except NotExistError:
            _writable_destination(args.output)  # the directory went away meanwhile?
            raise
        return
    out = sys.stdout.buffer
    with repo.get(digest) as stream:
        progress = _Progress("get", None)
        while chunk := stream.read(CHUNK):
            out.write(chunk)
            progress.add(len(chunk))
    progress.close()
    out.flush()


def _stat(repo: Any, args: argparse.Namespace) -> None:
    file = repo.stat(Digest.parse(args.digest))
    print(f"{file.digest} {file.size}")


def _cp(repo: Any, args: argparse.Namespace) -> None:
    digest = Digest.parse(args.digest)
    _dial(args.to)  # a bad or unsupported URL is a usage error, found before any request
    repo.write_to(digest, args.to)


def _protocol(repo: Any, args: argparse.Namespace) -> None:
    if args.enable_touch_records:
        repo.enable_touch_records()
    on = "on" if repo.touch_records_enabled() else "off (writers refresh each object)"
    print(f"{repo}: touch records {on}")


def _why(repo: Any, args: argparse.Namespace) -> None:
    digest = Digest.parse(args.digest)
    try:
        stored = f"stored, {repo.stat(digest).size} bytes"
    except NotExistError:
        stored = "not stored"
    naming = manifests_naming(digest, args.manifests)
    print(f"{digest}: {stored}; named by {len(naming)} manifests")
    for info in naming:
        labels = " ".join(f"{name}={value}" for name, value in sorted(info.labels.items()))
        print(f"  {info.location}  {info.kind}  {info.created_at.isoformat()}  {labels}".rstrip())
    if not naming:
        print("  no manifest names it: a collection against these deletes it once it is old")


_COMMANDS = {
    "put": _put,
    "get": _get,
    "stat": _stat,
    "cp": _cp,
    "protocol": _protocol,
    "why": _why,
}


class _UsageError(Exception):
    """A URL no repository opens: bad usage (exit 2), like a malformed one."""


def _dial(url: str) -> Any:
    try:
        return dial(url)
    except NotSupportedError as exc:
        raise _UsageError(str(exc)) from exc


def _say_retry(line: str) -> None:
    """One line on stderr per retry; on a terminal, over a progress line being drawn."""
    erase = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(f"{erase}s3repo: {line}", file=sys.stderr, flush=True)


def _client(args: argparse.Namespace) -> Any:
    """The client for this command: the flags, else boto3's configuration, else ours."""
    retries = getattr(args, "retries", None)
    timeout = getattr(args, "timeout", None)
    return make_client(
        max_attempts=None if retries is None else retries + 1,
        connect_timeout=timeout,
        read_timeout=timeout,
        on_retry=_say_retry,
    )


def _error(message: str, code: int) -> int:
    print(f"s3repo: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error argparse has printed
        return stop.code if isinstance(stop.code, int) else USAGE_ERROR
    url = args.repo or os.environ.get("S3REPO_URL")
    if not url:
        return _error(
            "no repository: pass --repo s3r://BUCKET/PREFIX or set S3REPO_URL", USAGE_ERROR
        )
    try:
        repo = _dial(url)
        with using_client(_client(args)):
            _COMMANDS[args.command](repo, args)
        sys.stdout.flush()
    except _UsageError as exc:
        return _error(str(exc), USAGE_ERROR)
    except RepositoryError as exc:
        code = next((c for kind, c in EXIT_CODES if isinstance(exc, kind)), 1)
        return _error(str(exc), code)
    except BrokenPipeError:
        # The reader went away (e.g. `s3repo get ... | head`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a local file: the store's errors are RepositoryErrors
        name = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{name}{exc.strerror or exc}", LOCAL_FILE_ERROR)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
