"""What a repository says it holds, from listings: ``list_objects`` (``s3repo ls``) and
``summary`` (``s3repo du``), the same on every implementation."""

from __future__ import annotations

import pytest
from contract_kit import Impl, payload

from s3repo_core import InvalidArgumentError


def test_list_objects_streams_every_digest_in_order_with_its_size(impl: Impl) -> None:
    impl.repo.list_page_size = 3  # type: ignore[attr-defined]  # several pages
    bodies = [payload(100 + n, seed=n) for n in range(10)]
    digests = [impl.repo.put(body) for body in bodies]
    impl.stray_key("not-a-digest")
    listed = list(impl.repo.list_objects())
    assert [item.digest for item in listed] == sorted(digests, key=str)
    sizes = {digest: len(body) for digest, body in zip(digests, bodies, strict=True)}
    assert all(item.size == sizes[item.digest] for item in listed)
    assert all(item.modified.tzinfo is not None for item in listed)


def test_list_objects_of_shards_lists_only_those_digests(impl: Impl) -> None:
    digests = [impl.repo.put(payload(50, seed=n)) for n in range(24)]
    shard = digests[0].hex[:1]
    other = next(d.hex[:2] for d in digests if not d.hex.startswith(shard))
    listed = [item.digest for item in impl.repo.list_objects([shard, other])]
    expected = [d for d in digests if d.hex.startswith(shard) or d.hex.startswith(other)]
    assert listed == sorted(expected, key=str)
    for bad in (["g"], ["a", "ab"], [""], ["12345"]):
        with pytest.raises(InvalidArgumentError):
            list(impl.repo.list_objects(bad))


def test_summary_counts_objects_per_shard_and_every_other_area(impl: Impl) -> None:
    bodies = [payload(1000 + n, seed=100 + n) for n in range(7)]
    digests = [impl.repo.put(body) for body in bodies]
    impl.stray_key("stray", b"12345")
    impl.write_key("uploads/0123456789abcdef", b"partial")
    summary = impl.repo.summary(by_shard=True)
    assert (summary.objects.count, summary.objects.bytes) == (7, sum(map(len, bodies)))
    assert (summary.other.count, summary.other.bytes) == (1, 5)
    assert (summary.uploads.count, summary.uploads.bytes) == (1, 7)
    assert summary.quarantine.count == 0 and summary.leases.count == 0
    per_shard = {name: total.count for name, total in summary.shards.items() if total.count}
    expected: dict[str, int] = {}
    for digest in digests:
        expected[digest.hex[0]] = expected.get(digest.hex[0], 0) + 1
    assert per_shard == expected
    assert impl.repo.summary().shards == {}  # only when asked for
    data = summary.to_dict()
    assert data["objects"] == {"count": 7, "bytes": sum(map(len, bodies))}
