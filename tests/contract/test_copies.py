"""read_from and write_to: copies between repositories, of one kind and across kinds,
each verified: a corrupt source is refused and the target is left without it."""

from __future__ import annotations

import pytest
from contract_kit import VERIFIED_COPY, Impl, MiB, payload

from s3repo_core import Digest, File, IntegrityError, NotExistError, Repository


def read_all(repo: Repository, digest: Digest) -> bytes:
    with repo.get(digest) as stream:
        return stream.read()


def copy_both_ways(here: Impl, there: Impl) -> None:
    """write_to ``there`` and read_from ``there``, of new and of stored content."""
    out, back = payload(2 * MiB + 3, seed=40), payload(1000, seed=41)
    out_digest = here.repo.put(out)
    here.repo.write_to(out_digest, there.repo.url)
    assert there.repo.stat(out_digest) == File(out_digest, len(out))
    assert read_all(there.repo, out_digest) == out

    back_digest = there.repo.put(back)
    here.repo.read_from(back_digest, there.repo.url)
    assert read_all(here.repo, back_digest) == back

    here.repo.write_to(back_digest, there.repo.url)  # stored at both ends already
    here.repo.read_from(str(out_digest), there.repo.url)
    assert here.object_keys() == sorted(here.key(d) for d in (out_digest, back_digest))
    assert there.object_keys() == sorted(there.key(d) for d in (out_digest, back_digest))
    assert here.stored_keys() == here.object_keys() and there.stored_keys() == there.object_keys()


def corrupt_copies_are_refused(here: Impl, there: Impl) -> None:
    """A corrupt source fails the copy, from either end, and the target stays without it."""
    directions = [
        (here, there, lambda digest: here.repo.write_to(digest, there.repo.url)),
        (there, here, lambda digest: here.repo.read_from(digest, there.repo.url)),
    ]
    for seed, (source, target, copy) in enumerate(directions, 42):
        data = payload(MiB + 1, seed=seed)
        digest = source.repo.put(data)
        source.tamper(digest, data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(IntegrityError):
            copy(digest)
        with pytest.raises(NotExistError):
            target.repo.stat(digest)
        assert target.stored_keys() == target.object_keys()  # nothing left over either


def test_copies_between_repositories_of_one_kind(impl: Impl) -> None:
    copy_both_ways(impl, impl.sibling())


def test_copies_between_file_and_s3_repositories(impl: Impl) -> None:
    copy_both_ways(impl, impl.foreign())


def test_a_corrupt_object_is_not_copied_to_a_repository_of_one_kind(
    impl: Impl, request: pytest.FixtureRequest
) -> None:
    impl.expect_contract(request, VERIFIED_COPY)
    corrupt_copies_are_refused(impl, impl.sibling())


def test_a_corrupt_object_is_not_copied_between_file_and_s3(impl: Impl) -> None:
    corrupt_copies_are_refused(impl, impl.foreign())
