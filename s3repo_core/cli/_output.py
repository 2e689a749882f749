"""What the command prints: results as text or as JSON on stdout, progress on stderr.

A command hands its result to :class:`Output` once, as a JSON-able value and the text
lines a person reads; ``--json`` picks which is printed. Progress is drawn with tqdm
only when stderr is a terminal (tqdm is imported only then): a pipe gets nothing.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, BinaryIO

from .._report import human_size

__all__ = ["CountingReader", "Output", "Progress", "human_size"]


class Output:
    """Where a command's result goes: text lines, or one JSON document (``--json``)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, value: Any, lines: Iterable[str] = ()) -> None:
        """Print ``value`` as JSON, or ``lines`` as text."""
        if self.as_json:
            print(json.dumps(value, indent=2, sort_keys=True))
        else:
            for line in lines:
                print(line)

    def item(self, value: Any, line: str) -> None:
        """One item of a stream (ls): a JSON object per line, or its text line."""
        print(json.dumps(value, sort_keys=True) if self.as_json else line)

    def error(self, kind: str, message: str, code: int, fields: dict[str, Any]) -> None:
        """An error, on stderr as text, and with ``--json`` also on stdout."""
        print(f"s3repo: error: {message}", file=sys.stderr, flush=True)
        if self.as_json:
            error = {"type": kind, "message": message, "exit_code": code, **fields}
            print(json.dumps({"error": error}, sort_keys=True), flush=True)


class Progress:
    """A progress bar with rate and time left on a terminal's stderr; else nothing.

    ``add`` may be called from worker threads. ``unit`` "B" counts bytes (scaled to
    KiB, MiB...); any other unit counts items.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "B") -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        self._objects = 0
        if sys.stderr.isatty():
            from tqdm import tqdm

            scaled = unit == "B"
            self._bar = tqdm(
                total=total,
                desc=label,
                unit=unit,
                unit_scale=scaled,
                unit_divisor=1024 if scaled else 1000,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
                mininterval=0.2,
            )

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def add(self, amount: int = 1, objects: int = 0) -> None:
        """Count ``amount`` units; ``objects`` done too, shown with their rate."""
        if self._bar is not None:
            with self._lock:
                if objects:
                    self._objects += objects
                    rate = self._objects / max(self._bar.format_dict["elapsed"], 1e-3)
                    self._bar.set_postfix_str(f"{self._objects} objects, {rate:.0f}/s", False)
                self._bar.update(amount)

    def describe(self, label: str) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.set_description_str(label)

    def restart(self, label: str, total: int | None = None) -> None:
        """Count a new phase from zero (hashing, then uploading)."""
        if self._bar is not None:
            with self._lock:
                self._bar.reset(total=total)
                self._bar.set_description_str(label)

    def close(self) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class CountingReader(io.RawIOBase):
    """A binary stream that reports how much is read from it, and is otherwise the stream.

    It keeps the stream's fileno, tell and seek, so that put still sees a regular file
    (hashed, then uploaded straight to its key) and not a stream of unknown length (sent
    to uploads/ and published with a server-side copy). Reading again after a seek is
    the upload pass (a file small enough to upload from memory is read once).
    """

    def __init__(self, stream: BinaryIO, progress: Progress) -> None:
        super().__init__()
        self._stream, self._progress = stream, progress
        self._rewound = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = int(self._stream.readinto(buffer) or 0)  # type: ignore[attr-defined]
        if count and self._rewound:  # read again after a seek back: the upload pass
            self._rewound = False
            self._progress.restart("upload")
        self._progress.add(count)
        return count

    def fileno(self) -> int:
        return self._stream.fileno()

    def seekable(self) -> bool:
        return self._stream.seekable()

    def tell(self) -> int:
        return self._stream.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._stream.seek(offset, whence)
        self._rewound = True
        return position
