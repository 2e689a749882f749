# PYTHON_ARGCOMPLETE_OK (argcomplete completes only scripts that say so)
"""The ``s3repo`` command: put, get, list, verify and collect the objects of one
repository, and write and read the manifests that keep them live.

The repository is ``--repo s3r://bucket/prefix`` or ``$S3REPO_URL``. The S3 endpoint,
region and credentials come from boto3's standard configuration (``AWS_ENDPOINT_URL_S3``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/``...); timeouts and retries from
``--timeout`` and ``--retries``, else that configuration, else s3repo's defaults (see
``s3repo_core._client``), and each retry is reported on stderr. Every error is printed
as ``s3repo: error: <message>`` with an exit code that tells its kind (see ``EXIT_CODES``,
``USAGE_ERROR`` and ``LOCAL_FILE_ERROR``).

Start-up is part of the interface: a shell loop runs the command once per file. So
only the parser is built before a command runs, and each command imports what it needs
(``s3repo stat`` never imports pyarrow or numpy).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from typing import Any

from .._errors import (
    CollectionFailedError,
    ConflictError,
    IntegrityError,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    RepositoryError,
)
from ._output import Output
from ._parser import build_parser

__all__ = ["EXIT_CODES", "LOCAL_FILE_ERROR", "USAGE_ERROR", "main"]

#: The exit code of each kind of repository error, most specific first; any other
#: error exits 1 (the store unreachable, refusing, or not S3).
EXIT_CODES: tuple[tuple[type[RepositoryError], int], ...] = (
    (InvalidArgumentError, 2),
    (NotSupportedError, 2),  # a URL scheme no repository is registered for
    (NotExistError, 3),
    (IntegrityError, 4),
    (ConflictError, 6),
    (CollectionFailedError, 6),
)
#: Bad usage: an unknown command or option, a bad digest or URL, an unsupported scheme.
USAGE_ERROR = 2
#: A local file or directory is missing, unreadable or unwritable (an OSError).
LOCAL_FILE_ERROR = 5

#: Each command's function, as "module:function" of this package, imported when run.
_COMMANDS = {
    "put": "_objects:put",
    "get": "_objects:get",
    "stat": "_objects:stat",
    "ls": "_objects:ls",
    "du": "_objects:du",
    "cp": "_objects:cp",
    "verify": "_upkeep:verify",
    "collect": "_upkeep:collect",
    "protocol": "_upkeep:protocol",
    "manifest": "_manifests:manifest",
    "why": "_manifests:why",
}
#: Commands that read only manifests, and so need no repository.
_WITHOUT_REPOSITORY = {("manifest", "show"), ("manifest", "merge")}


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def _command(name: str) -> Any:
    module, function = _COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


class _UsageError(Exception):
    """No repository named: bad usage (exit 2)."""


def _say_retry(line: str) -> None:
    """One line on stderr per retry; on a terminal, over a progress line being drawn."""
    erase = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(f"{erase}s3repo: {line}", file=sys.stderr, flush=True)


def _client(args: argparse.Namespace) -> Any:
    """The client for this command: the flags, else boto3's configuration, else ours."""
    from .._client import make_client

    retries = getattr(args, "retries", None)
    timeout = getattr(args, "timeout", None)
    return make_client(
        max_attempts=None if retries is None else retries + 1,
        connect_timeout=timeout,
        read_timeout=timeout,
        on_retry=_say_retry,
    )


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request, if this is one (argcomplete's protocol)."""
    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)


def _run(args: argparse.Namespace, out: Output) -> int:
    from .._client import using_client

    needs_repo = (args.command, getattr(args, "action", None)) not in _WITHOUT_REPOSITORY
    url = args.repo or os.environ.get("S3REPO_URL")
    if needs_repo and not url:
        raise _UsageError("no repository: pass --repo s3r://BUCKET/PREFIX or set S3REPO_URL")
    from .._dial import dial

    repo = dial(url) if needs_repo and url else None
    with using_client(_client(args)):
        code = _command(args.command)(repo, args, out)
    sys.stdout.flush()
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); the exit code."""
    parser = _parser()
    _complete(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse has printed
        return stop.code if isinstance(stop.code, int) else USAGE_ERROR
    out = Output(bool(args.json))
    try:
        return _run(args, out)
    except _UsageError as exc:
        return _fail(out, exc, USAGE_ERROR)
    except RepositoryError as exc:
        return _fail(out, exc, next((c for kind, c in EXIT_CODES if isinstance(exc, kind)), 1))
    except BrokenPipeError:
        # The reader went away (e.g. `s3repo get ... | head`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a local file: the store's errors are RepositoryErrors
        name = f"{exc.filename}: " if exc.filename else ""
        return _fail(out, exc, LOCAL_FILE_ERROR, f"{name}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return _fail(out, None, 130, "interrupted")


def _fail(out: Output, exc: BaseException | None, code: int, message: str | None = None) -> int:
    fields: dict[str, Any] = {}
    if isinstance(exc, RepositoryError):
        fields = {
            name: str(value)
            for name in ("key", "digest", "code")
            if (value := getattr(exc, name, None)) is not None
        }
    elif isinstance(exc, OSError) and exc.filename:
        fields = {"path": str(exc.filename)}
    kind = "Interrupted" if exc is None else type(exc).__name__.lstrip("_")
    out.error(kind, message if message is not None else str(exc), code, fields)
    return code
