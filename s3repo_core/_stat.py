"""The size of many objects at once: :func:`stat_many`, built on a repository's ``stat``.

Any repository will do (S3, a local directory, one in memory): only ``stat`` is called,
``concurrency`` calls at a time on a bounded thread pool, each distinct digest once.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol

from ._digest import Digest, File
from ._errors import InvalidArgumentError, NotExistError

__all__ = ["DEFAULT_STAT_CONCURRENCY", "stat_many"]

#: Lookups in flight at once: each is one small request (a HEAD on S3).
DEFAULT_STAT_CONCURRENCY = 16
#: Missing digests named in a NotExistError; the rest are counted.
SHOWN_MISSING = 10


class _Stats(Protocol):
    """What :func:`stat_many` needs of a repository."""

    def stat(self, digest: Digest, /) -> File: ...


def _parsed(digest: object) -> Digest:
    if isinstance(digest, Digest):
        return digest
    if isinstance(digest, str):
        return Digest.parse(digest)
    raise InvalidArgumentError(
        f"a digest is a Digest or a 'sha256:<hex>' string, got {type(digest).__name__}"
    )


def stat_many(
    repo: _Stats,
    digests: Iterable[Digest | str],
    *,
    concurrency: int = DEFAULT_STAT_CONCURRENCY,
) -> list[File]:
    """The :class:`File` of each of ``digests``, in their order (a digest given twice is
    looked up once and listed twice).

    Every digest is parsed before any lookup: InvalidArgumentError for a malformed one.
    NotExistError if some are not stored, naming them (the first
    :data:`SHOWN_MISSING`, in the order given) and how many there are, not just the
    first. Any other error of ``repo.stat`` is raised as it is, once the lookups in
    flight have finished; those not yet started are not made.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if isinstance(digests, str | bytes):
        raise InvalidArgumentError("digests is a list of digests, not one string")
    wanted = [_parsed(digest) for digest in digests]
    distinct = list(dict.fromkeys(wanted))
    found: dict[Digest, File] = {}
    missing: set[Digest] = set()
    with ThreadPoolExecutor(
        max_workers=min(concurrency, max(len(distinct), 1)), thread_name_prefix="s3repo-stat"
    ) as pool:
        pending: dict[Future[File], Digest] = {}
        queue = iter(distinct)
        try:
            while True:
                while len(pending) < concurrency:
                    digest = next(queue, None)
                    if digest is None:
                        break
                    pending[pool.submit(repo.stat, digest)] = digest
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    digest = pending.pop(future)
                    try:
                        found[digest] = future.result()
                    except NotExistError:
                        missing.add(digest)
        finally:
            for future in pending:
                future.cancel()
    if missing:
        named = [str(d) for d in distinct if d in missing]
        shown = ", ".join(named[:SHOWN_MISSING]) + (" ..." if len(named) > SHOWN_MISSING else "")
        raise NotExistError(f"{len(named)} of {len(distinct)} digests are not in {repo}: {shown}")
    return [found[digest] for digest in wanted]
