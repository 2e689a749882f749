"""What only the file:// repository does: its URLs, its directory, its temporary files.

The contract it shares with S3 is tested in tests/contract/.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from s3repo_core import (
    ExactLiveset,
    FileRepository,
    InvalidArgumentError,
    NotExistError,
    Repository,
    dial,
)

WINDOWS = {
    "grace": timedelta(seconds=5),
    "refresh_window": timedelta(seconds=1),
    "settle": timedelta(seconds=1),
}


def test_dial_opens_a_directory_and_url_opens_it_again(tmp_path: Path) -> None:
    repo = dial(tmp_path.as_uri())
    assert isinstance(repo, FileRepository) and isinstance(repo, Repository)
    digest = repo.put(b"bytes")
    again = dial(repo.url)
    assert again.stat(digest).size == 5
    assert repo.short_string() == f"file:{tmp_path}"
    assert (tmp_path / "objects" / str(digest)).read_bytes() == b"bytes"


@pytest.mark.parametrize(
    "url", ["file://host/tmp/x", "file:///tmp/x?prefix=p", "file:///tmp/x#f", "file:relative"]
)
def test_a_malformed_file_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        dial(url)


def test_a_missing_directory_is_not_created_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(NotExistError, match="does not exist"):
        FileRepository(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    FileRepository(tmp_path / "missing", create=True).put(b"x")
    assert (tmp_path / "missing" / "objects").is_dir()


def test_a_killed_writers_temporary_file_is_collected_once_old(tmp_path: Path) -> None:
    repo = FileRepository(tmp_path, **WINDOWS)
    temp, out = repo.store.new_temp()  # what a writer killed mid-put leaves behind
    out.write(b"half")
    out.close()
    report = repo.collect(ExactLiveset([]))
    assert report.multipart_aborted == 0 and temp.exists()  # young: maybe still written
    old = time.time() - 3600
    os.utime(temp, (old, old))
    report = repo.collect(ExactLiveset([]), dry_run=True)
    assert report.multipart_aborted == 1 and temp.exists()
    report = repo.collect(ExactLiveset([]))
    assert report.multipart_aborted == 1 and not temp.exists()
