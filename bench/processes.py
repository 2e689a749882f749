"""One run of another program, with its peak memory: what s5cmd and the s3repo command
sides of the benchmark measure (a child's rusage starts at its parent's, so the peak
RSS is polled from /proc while it runs)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

__all__ = ["peak_rss", "run_measured"]


def peak_rss(pid: int) -> int | None:
    """The peak resident set of process ``pid`` so far (VmHWM), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def run_measured(
    command: list[str], environ: dict[str, str], timeout: float, stdin: str | None = None
) -> tuple[str, int | None]:
    """Run ``command`` (``stdin`` on its standard input, if given): what it printed on
    stdout, and its peak RSS. RuntimeError (with the end of its stderr) unless it exits 0;
    killed if it outlasts ``timeout``."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        text=True,
    )
    peak: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.01):
            rss = peak_rss(proc.pid)
            if rss is not None:
                peak.append(rss)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    finally:
        done.set()
        poller.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}:\n{err[-3000:]}")
    return out, max(peak) if peak else None
