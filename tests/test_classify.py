"""Collection's per-page decision: which listed keys name digests, and which are live.

The usual page (every key a digest's object key) takes a vectorised path; these tests pin
that it answers exactly as parsing key by key does, on pages built to fool it.
"""

from __future__ import annotations

import numpy as np
import pytest

from s3repo_core._collect import classify_keys
from s3repo_core._digest import Digest
from s3repo_core._names import Layout
from s3repo_core.liveset import DIGEST_DTYPE, BloomLiveset, ExactLiveset

LAYOUT = Layout("some/prefix")


def sorted_digests(n: int, seed: int = 0) -> list[Digest]:
    return sorted(Digest.of(f"{seed}-{i}".encode()) for i in range(n))


def keys_of(digests: list[Digest], layout: Layout = LAYOUT) -> list[str]:
    return [layout.object_key(d) for d in digests]


def one_by_one(keys: list[str], layout: Layout = LAYOUT) -> tuple[list[bool], list[bytes]]:
    parsed = [layout.digest_of_key(k) for k in keys]
    return [d is not None for d in parsed], [d.raw for d in parsed if d is not None]


def check_matches_one_by_one(keys: list[str], layout: Layout = LAYOUT) -> None:
    valid, raw = layout.digests_of_keys(keys)
    expected_valid, expected_raw = one_by_one(keys, layout)
    assert valid.dtype == np.bool_ and valid.tolist() == expected_valid
    assert raw.dtype == DIGEST_DTYPE and [r.tobytes() for r in raw] == expected_raw


@pytest.mark.parametrize("prefix", ["", "p", "a/b/c", "ünï/cödé"])
def test_a_page_of_digest_keys_decodes_to_its_digests(prefix: str) -> None:
    layout = Layout(prefix)
    digests = sorted_digests(500)
    valid, raw = layout.digests_of_keys(keys_of(digests, layout))
    assert valid.all()
    assert [Digest(r.tobytes()) for r in raw] == digests


@pytest.mark.parametrize(
    "bad",
    [
        "some/prefix/objects/sha256:" + "A" * 64,  # uppercase hex
        "some/prefix/objects/sha256:" + "g" * 64,
        "some/prefix/objects/sha256:" + "0" * 63 + " ",
        # the neighbours of each digit range, first and second of a byte's two digits
        "some/prefix/objects/sha256:" + "0" * 62 + "/0",
        "some/prefix/objects/sha256:" + "0" * 62 + "0:",
        "some/prefix/objects/sha256:" + "`" + "0" * 63,
        "some/prefix/objects/sha256:" + "0" * 31 + "{" + "0" * 32,
        "some/prefix/objects/sha256:" + "f" * 62 + "fF",
        "some/prefix/objects/sha256:" + "0" * 63,  # short
        "some/prefix/objects/sha256:" + "0" * 65,  # long
        "some/prefix/objects/sha512:" + "0" * 64,
        "some/prefix/objects/" + "0" * 71,
        "other/prefix/objects/sha256:" + "0" * 63,  # same length, other prefix
        "some/prefix/objects/sha256:" + "0" * 63 + "é",  # same length in characters
        "some/prefix/objects/sha256:" + "0" * 31 + "\n" + "0" * 32,
        "",
    ],
)
def test_a_page_with_one_bad_key_answers_as_key_by_key(bad: str) -> None:
    keys = keys_of(sorted_digests(50))
    keys.insert(17, bad)
    check_matches_one_by_one(keys)
    assert LAYOUT.digests_of_keys(keys)[0].tolist().count(False) == 1


@pytest.mark.parametrize("cut", [3, 40])
def test_keys_with_newlines_cannot_pass_for_rows(cut: int) -> None:
    # Joined with newlines, these two keys have the bytes of two rows, newline included;
    # but a key holds a newline, so the rows are misaligned and must not decode.
    a, b = keys_of(sorted_digests(2))
    keys = [a + "\n" + b[:cut], b[cut + 1 :]]
    assert len("\n".join([*keys, ""])) == len("\n".join([a, b, ""]))
    check_matches_one_by_one(keys)
    assert not LAYOUT.digests_of_keys(keys)[0].any()


def test_no_keys() -> None:
    valid, raw = LAYOUT.digests_of_keys([])
    assert valid.shape == (0,) and raw.shape == (0,) and raw.dtype == DIGEST_DTYPE


@pytest.mark.parametrize("make", [ExactLiveset, BloomLiveset.from_digests, set])
def test_classify_keys_marks_live_digests_and_never_invalid_keys(make: object) -> None:
    digests = sorted_digests(300)
    live = digests[::3]
    keys = keys_of(digests)
    keys[5] = keys[5].upper()  # not a digest: never live, whatever the liveset says
    liveset = make(live)  # type: ignore[operator]
    valid, found = classify_keys(LAYOUT, liveset, keys)
    assert valid.tolist() == [i != 5 for i in range(300)]
    expected = [i % 3 == 0 and i != 5 for i in range(300)]
    if isinstance(liveset, BloomLiveset):  # no false negatives; false positives allowed
        assert all(f for f, e in zip(found.tolist(), expected, strict=True) if e)
    else:
        assert found.tolist() == expected


def test_sorted_and_shuffled_queries_get_the_same_answers() -> None:
    rng = np.random.default_rng(11)
    members = np.frombuffer(rng.bytes(32 * 2000), dtype=DIGEST_DTYPE)
    live = ExactLiveset.from_array(members[::2])
    # Sorted queries, including ones before the first and after the last member.
    query = np.concatenate([members, np.frombuffer(b"\x00" * 32 + b"\xff" * 32, DIGEST_DTYPE)])
    query = query[np.lexsort(query.view(">u8").reshape(-1, 4).T[::-1])]
    expected = [
        Digest(q.tobytes()) in set(map(Digest, (m.tobytes() for m in members[::2]))) for q in query
    ]
    assert live.contains_many(query).tolist() == expected
    shuffled = rng.permutation(len(query))
    assert live.contains_many(query[shuffled]).tolist() == [expected[i] for i in shuffled]
