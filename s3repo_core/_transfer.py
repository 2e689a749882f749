"""Copying an object between two repositories, whatever their implementations.

Two S3 repositories on one endpoint copy server-side; any other pair streams the
bytes through this process, verified as they are read and hashed again as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._dial import dial
from ._digest import Digest

if TYPE_CHECKING:
    from ._repository import Repository

__all__ = ["copies_server_side", "transfer"]


def copies_server_side(source: Repository, target: Repository) -> bool:
    """Whether a copy from ``source`` to ``target`` never passes through this process
    (and so is not hashed on the way: the bytes were verified when written)."""
    from ._s3repository import S3Repository

    return (
        isinstance(source, S3Repository)
        and isinstance(target, S3Repository)
        and target.store.same_endpoint(source.store)
    )


def transfer(digest: Digest, src: Repository | str, dst: Repository | str) -> None:
    """Copy ``digest`` from ``src`` to ``dst`` (repositories, or URLs to dial)."""
    source = dial(src) if isinstance(src, str) else src
    target = dial(dst) if isinstance(dst, str) else dst
    if copies_server_side(source, target) and target.copy_from(source, digest):  # type: ignore[attr-defined]
        return
    file = source.stat(digest)
    with source.get(digest) as stream:
        target.put_file(file, stream)
