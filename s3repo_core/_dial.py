"""Repository URLs: a registry of schemes, ``s3r://`` first, as the seed's Dial.

The built-in schemes (``s3r``, ``file``) are known by the module that implements them,
imported on the first ``dial`` of one, so that opening a ``file://`` repository never
loads botocore. A scheme given to :func:`register_scheme` takes precedence over them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from ._errors import InvalidArgumentError, NotSupportedError

if TYPE_CHECKING:
    from ._repository import Repository

__all__ = ["dial", "register_scheme", "registered_schemes"]

Opener = Callable[[SplitResult], "Repository"]
_schemes: dict[str, Opener] = {}
#: The built-in schemes: the module and class whose ``from_url`` opens them.
_BUILTIN: dict[str, tuple[str, str]] = {
    "s3r": ("s3repo_core._s3repository", "S3Repository"),
    "file": ("s3repo_core._filerepository", "FileRepository"),
}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Make ``dial`` open ``scheme://`` URLs with ``opener(parsed_url)``."""
    _schemes[scheme.lower()] = opener


def registered_schemes() -> list[str]:
    return sorted(_schemes.keys() | _BUILTIN.keys())


def _opener(scheme: str) -> Opener | None:
    """What opens ``scheme://`` URLs: the registered opener, else the built-in one."""
    opener = _schemes.get(scheme)
    if opener is None and scheme in _BUILTIN:
        module, name = _BUILTIN[scheme]
        opener = getattr(importlib.import_module(module), name).from_url
    return opener


def dial(url: str) -> Repository:
    """Open the repository at ``url``, e.g. ``s3r://bucket/prefix``.

    Raises InvalidArgumentError for a malformed URL (control characters, surrounding
    whitespace, a bad bucket or prefix: see :func:`~s3repo_core._names.clean_prefix`)
    and NotSupportedError for a scheme no repository is registered for.
    """
    if not isinstance(url, str):
        raise InvalidArgumentError(f"a repository URL is a string, got {type(url).__name__}")
    # urlsplit silently drops tabs and newlines and strips leading controls and spaces:
    # "s3r://bucket\n/x" would open s3r://bucket/x. Refuse instead.
    if url != url.strip() or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidArgumentError(
            f"malformed repository URL {url!r}: it holds whitespace at an end or a control "
            "character"
        )
    try:
        parsed = urlsplit(url)
    except ValueError as exc:
        raise InvalidArgumentError(f"malformed repository URL {url!r}: {exc}") from exc
    if not parsed.scheme:
        raise InvalidArgumentError(
            f"malformed repository URL {url!r}: no scheme (expected e.g. s3r://bucket/prefix)"
        )
    opener = _opener(parsed.scheme.lower())
    if opener is None:
        raise NotSupportedError(
            f"unsupported repository URL scheme {parsed.scheme!r} in {url!r}; "
            f"supported: {', '.join(s + '://' for s in registered_schemes())}"
        )
    return opener(parsed)
