"""Digest and File: strict parsing at the edge, values afterwards."""

from __future__ import annotations

import hashlib

import pytest

from s3repo_core import Digest, File, InvalidArgumentError

HEX = hashlib.sha256(b"hello").hexdigest()


def test_parse_round_trips_and_exposes_hex() -> None:
    digest = Digest.parse(f"sha256:{HEX}")
    assert str(digest) == f"sha256:{HEX}"
    assert digest.hex == HEX
    assert digest == Digest.of(b"hello")
    assert hash(digest) == hash(Digest.of(b"hello"))
    assert repr(digest) == f"Digest('sha256:{HEX}')"


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEX,  # no algorithm
        f"sha256:{HEX[:-1]}",  # too short
        f"sha256:{HEX}0",  # too long
        f"sha256:{HEX.upper()}",  # upper case
        f"SHA256:{HEX}",
        f"sha512:{HEX}",
        f"md5:{HEX}",
        f"sha256:{HEX[:-1]}g",  # not hex
        f"sha256: {HEX[1:]}",
        f" sha256:{HEX}",
        f"sha256:{HEX}\n",
        "sha256:",
        "junk",
    ],
)
def test_parse_rejects_everything_else(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="digest"):
        Digest.parse(text)


@pytest.mark.parametrize("value", [None, 42, b"sha256:" + HEX.encode()])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        Digest.parse(value)  # type: ignore[arg-type]


def test_digest_needs_32_raw_bytes() -> None:
    with pytest.raises(InvalidArgumentError):
        Digest(b"\x00" * 31)
    assert Digest.from_bytes(bytearray(32)).raw == bytes(32)


def test_digests_order_by_their_bytes() -> None:
    low, high = Digest(bytes(32)), Digest(b"\xff" * 32)
    assert low < high
    assert sorted([high, low]) == [low, high]


def test_file_is_an_immutable_value() -> None:
    file = File(Digest.of(b"x"), 1)
    assert file == File(Digest.of(b"x"), 1)
    with pytest.raises(AttributeError):
        file.size = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("digest", "size"),
    [(f"sha256:{HEX}", 1), (Digest.of(b"x"), -1), (Digest.of(b"x"), 1.5), (Digest.of(b"x"), True)],
)
def test_file_rejects_bad_fields(digest: object, size: object) -> None:
    with pytest.raises(InvalidArgumentError):
        File(digest, size)  # type: ignore[arg-type]
