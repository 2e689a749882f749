"""Bad input and missing objects: the library's errors, each saying what it is about.

A malformed argument is InvalidArgumentError, a missing object NotExistError with its
``digest`` and ``key``, a local file problem the OSError it is (the command tells them
apart), and nothing is written or created on the way.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from contract_kit import Impl

from s3repo_core import (
    Digest,
    File,
    InvalidArgumentError,
    NotExistError,
    NotSupportedError,
    RepositoryError,
)

MALFORMED = [
    "",
    "sha256:abc",
    "sha256:" + "A" * 64,
    "md5:" + "a" * 64,
    "junk",
    "sha256:" + "g" * 64,
]


@pytest.mark.parametrize("digest", MALFORMED)
def test_malformed_digests_are_invalid_arguments(impl: Impl, tmp_path: Path, digest: str) -> None:
    repo, other = impl.repo, impl.make().url
    calls = {
        "stat": lambda: repo.stat(digest),
        "get": lambda: repo.get(digest),
        "get_file": lambda: repo.get_file(digest, tmp_path / "x"),
        "write_to": lambda: repo.write_to(digest, other),
        "read_from": lambda: repo.read_from(digest, other),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidArgumentError):
            call()
            pytest.fail(f"{name} accepted {digest!r}")
    assert list(tmp_path.iterdir()) == []
    assert impl.stored_keys() == []


def test_missing_objects_are_not_exist_errors_that_say_which(impl: Impl, tmp_path: Path) -> None:
    digest = Digest.of(b"never stored")
    calls = {
        "stat": lambda: impl.repo.stat(digest),
        "get": lambda: impl.repo.get(digest),
        "get_file": lambda: impl.repo.get_file(digest, tmp_path / "x"),
        "get_file(str)": lambda: impl.repo.get_file(str(digest), tmp_path / "x"),
    }
    for name, call in calls.items():
        with pytest.raises(NotExistError) as caught:
            call()
        assert (caught.value.digest, caught.value.key) == (digest, impl.key(digest)), name
        assert str(digest) in str(caught.value), name
    assert list(tmp_path.iterdir()) == []


def test_copying_a_missing_object_is_a_not_exist_error(impl: Impl) -> None:
    other = impl.sibling()
    digest = Digest.of(b"nowhere")
    with pytest.raises(NotExistError):
        impl.repo.write_to(digest, other.repo.url)
    with pytest.raises(NotExistError):
        impl.repo.read_from(digest, other.repo.url)
    assert impl.stored_keys() == [] and other.stored_keys() == []


@pytest.mark.parametrize("body", ["text", 42, None, [b"a"], {"a": 1}])
def test_bodies_that_are_not_bytes_are_refused(impl: Impl, body: object) -> None:
    with pytest.raises(InvalidArgumentError):
        impl.repo.put(body)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        impl.repo.put_file(File(Digest.of(b"x"), 1), body)  # type: ignore[arg-type]
    assert impl.stored_keys() == []


def test_a_text_stream_is_refused_and_nothing_is_stored(impl: Impl) -> None:
    with pytest.raises(InvalidArgumentError, match="binary"):
        impl.repo.put(io.StringIO("text"))
    with pytest.raises(InvalidArgumentError, match="binary"):
        impl.repo.put_file(File(Digest.of(b"text"), 4), io.StringIO("text"))
    assert impl.stored_keys() == []


@pytest.mark.parametrize(
    "file", [(Digest.of(b"x"), 1), str(Digest.of(b"x")), Digest.of(b"x"), None]
)
def test_put_file_needs_a_file(impl: Impl, file: object) -> None:
    with pytest.raises(InvalidArgumentError):
        impl.repo.put_file(file, b"x")  # type: ignore[arg-type]
    assert impl.stored_keys() == []


def test_get_file_to_a_path_that_cannot_be_written_is_a_local_file_error(
    impl: Impl, tmp_path: Path
) -> None:
    """A local problem is an OSError, not a missing object: the CLI tells them apart."""
    digest = impl.repo.put(b"content")
    with pytest.raises(FileNotFoundError) as caught:
        impl.repo.get_file(digest, tmp_path / "missing" / "dest")
    assert not isinstance(caught.value, RepositoryError)
    with pytest.raises(IsADirectoryError):
        impl.repo.get_file(digest, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dest", [42, None, b"not-a-path-object", io.StringIO()])
def test_get_file_to_something_that_is_not_a_destination_is_refused(
    impl: Impl, dest: object
) -> None:
    digest = impl.repo.put(b"content")
    with pytest.raises(InvalidArgumentError):
        impl.repo.get_file(digest, dest)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["gs://bucket/x", "http://host/x", "nourl"])
def test_copies_to_or_from_an_unknown_kind_of_url_are_refused(impl: Impl, url: str) -> None:
    digest = impl.repo.put(b"going nowhere")
    expected = NotSupportedError if "://" in url else InvalidArgumentError
    with pytest.raises(expected):
        impl.repo.write_to(digest, url)
    with pytest.raises(expected):
        impl.repo.read_from(digest, url)
    assert impl.stored_keys() == [impl.key(digest)]
