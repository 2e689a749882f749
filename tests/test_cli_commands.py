"""Every command of ``s3repo``, as a shell user runs it: the installed entry point in a
subprocess, against each S3 server, with ``--json`` output parsed and checked; then the
exit-code table, progress on a terminal, and the edge cases of each command."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit.localserver import LocalS3
from s3repo_core import Digest, read_manifest

from faultproxy import FaultProxy, request_kind

ENTRY_POINT = Path(sys.executable).with_name("s3repo")
PREFIX = "cli"


@dataclass
class Shell:
    """The ``s3repo`` command, configured as a user would: environment variables only."""

    server: LocalS3
    bucket: str
    cwd: Path

    @property
    def url(self) -> str:
        return f"s3r://{self.bucket}/{PREFIX}"

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.server.environ(), "S3REPO_URL": self.url}

    def run(
        self, *args: str, stdin: bytes = b"", code: int = 0
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            [str(ENTRY_POINT), *args],
            input=stdin,
            env=self.env(),
            cwd=self.cwd,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == code, (args, done.returncode, done.stderr.decode())
        assert b"Traceback" not in done.stderr, done.stderr.decode()
        return done

    def json(self, *args: str, stdin: bytes = b"", code: int = 0) -> Any:
        return json.loads(self.run("--json", *args, stdin=stdin, code=code).stdout)

    def key(self, digest: str) -> str:
        return f"{PREFIX}/objects/{digest}"

    def overwrite(self, digest: str, data: bytes) -> None:
        """Change a stored object behind the repository's back (bit rot, a bad disk)."""
        self.server.client().put_object(Bucket=self.bucket, Key=self.key(digest), Body=data)

    def remove(self, digest: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=self.key(digest))


@pytest.fixture
def shell(s3server: LocalS3, tmp_path: Path) -> Shell:
    return Shell(s3server, s3server.create_bucket(), tmp_path)


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n" * 100,
        "b.txt": b"beta\n" * 200,
        "same-as-a.txt": b"alpha\n" * 100,
        "sub/c.bin": os.urandom(3000),
        "sub/deeper/d.bin": os.urandom(70_000),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_every_command_through_the_entry_point(shell: Shell, tmp_path: Path) -> None:
    assert ENTRY_POINT.exists(), "the package is installed with its s3repo script"
    data = tmp_path / "data"
    files = _tree(data)
    digests = {name: str(Digest.of(body)) for name, body in files.items()}

    # put: a directory, recursively, in path order; a manifest of what was put.
    put = shell.json("put", "data", "--manifest", "put.parquet")
    assert [(f["path"], f["digest"], f["size"]) for f in put["files"]] == [
        (f"data/{name}", digests[name], len(files[name])) for name in sorted(files)
    ]
    record = read_manifest(tmp_path / "put.parquet")
    assert record.kind == "record"
    assert {str(row.digest) for row in record} == set(digests.values())
    text = shell.run("put", "data/a.txt").stdout.decode()
    assert text == f"{digests['a.txt']}  {len(files['a.txt'])}  data/a.txt\n"
    assert shell.run("put", "-", stdin=b"from stdin").stdout.decode() == (
        f"{Digest.of(b'from stdin')}\n"
    )

    # stat: several at once; exit 3 naming the missing one, the others still printed.
    absent = str(Digest.of(b"never stored"))
    stat = shell.json("stat", digests["a.txt"], absent, code=3)
    assert stat["files"] == [{"digest": digests["a.txt"], "size": len(files["a.txt"])}]
    assert stat["missing"] == [absent]
    both = shell.run("stat", digests["a.txt"], absent, code=3)
    assert f"{absent} is not in {shell.url}".encode() in both.stderr

    # ls and du agree with what was put: 5 distinct contents (4 files + stdin's).
    stored = set(digests.values()) | {str(Digest.of(b"from stdin"))}
    listed = [json.loads(line) for line in shell.run("--json", "ls").stdout.splitlines()]
    assert [item["digest"] for item in listed] == sorted(stored)
    assert shell.run("ls").stdout.decode().split() == sorted(stored)
    shard = digests["sub/c.bin"][len("sha256:") :][:2]
    in_shard = shell.run("ls", "--shard", shard).stdout.decode().split()
    assert in_shard == sorted(d for d in stored if d.startswith(f"sha256:{shard}"))
    du = shell.json("du", "--by-shard")
    sizes = {digests[n]: len(b) for n, b in files.items()} | {str(Digest.of(b"from stdin")): 10}
    assert du["objects"] == {"count": len(stored), "bytes": sum(sizes.values())}
    assert sum(s["count"] for s in du["shards"].values()) == len(stored)

    # get: to stdout, to a file, several into a directory.
    assert shell.run("get", digests["b.txt"]).stdout == files["b.txt"]
    shell.run("get", digests["b.txt"], "-o", "b.out")
    assert (tmp_path / "b.out").read_bytes() == files["b.txt"]
    (tmp_path / "many").mkdir()
    got = shell.json("get", digests["a.txt"], digests["sub/c.bin"], "-d", "many")
    assert {Path(f["path"]).name for f in got["files"]} == {
        digests["a.txt"][7:],
        digests["sub/c.bin"][7:],
    }
    assert (tmp_path / "many" / digests["sub/c.bin"][7:]).read_bytes() == files["sub/c.bin"]

    # verify: all good, then a tampered, a truncated and a missing object.
    report = shell.json("verify", "--all")
    assert (report["checked"], report["corrupt"], report["missing"]) == (len(stored), [], [])
    assert report["bytes_read"] == sum(sizes.values())
    shell.overwrite(digests["b.txt"], files["b.txt"][:-1] + b"!")
    shell.overwrite(digests["sub/deeper/d.bin"], files["sub/deeper/d.bin"][:1000])
    shell.remove(digests["sub/c.bin"])
    found = shell.json("verify", "--manifests", "put.parquet", code=4)
    assert found["corrupt"] == [digests["b.txt"]]
    assert found["truncated"] == [digests["sub/deeper/d.bin"]]
    assert found["missing"] == [digests["sub/c.bin"]]
    assert shell.json("verify", digests["sub/c.bin"], code=3)["missing"] == [digests["sub/c.bin"]]

    # cp refuses a corrupt source, copies a good one (server-side, verified first).
    mirror = f"s3r://{shell.bucket}/mirror"
    shell.run("cp", digests["b.txt"], "--to", mirror, code=4)
    copied = shell.json("cp", digests["a.txt"], "--to", mirror)
    assert copied["copied"] == [{"digest": digests["a.txt"], "server_side": True, "to": mirror}]
    assert shell.json("--repo", mirror, "stat", digests["a.txt"])["missing"] == []

    # verify --quarantine moves the bad ones aside; a put of the right bytes repairs them.
    # (Listed by --all, the truncated one is corrupt: no size is known but the listing's.)
    bad = sorted([digests["b.txt"], digests["sub/deeper/d.bin"]])
    moved = shell.json("verify", "--all", "--quarantine", code=4)
    assert (sorted(moved["corrupt"]), sorted(moved["quarantined"])) == (bad, bad)
    assert shell.json("verify", *bad, code=3)["missing"] == bad
    shell.run("put", "data")
    clean = shell.json("verify", "--manifests", "put.parquet")
    assert (clean["checked"], clean["corrupt"], clean["missing"]) == (4, [], [])
    assert shell.json("du")["quarantine"]["count"] == 2

    # manifest write / show / merge, and why.
    written = shell.json(
        "manifest", "write", "kept.parquet", digests["a.txt"], "--label", "team=ml"
    )
    assert (written["kind"], written["rows"], written["labels"]) == ("record", 1, {"team": "ml"})
    shown = shell.json("manifest", "show", "kept.parquet")
    assert [row["digest"] for row in shown["rows_shown"]] == [digests["a.txt"]]
    merged = shell.json("manifest", "merge", "kept.parquet", "put.parquet", "--to", "m.parquet")
    assert merged["rows"] == len(set(digests.values()))
    assert merged["created_at"] == min(written["created_at"], record.created_at.isoformat())
    why = shell.json("why", digests["a.txt"], "--manifests", "kept.parquet", "put.parquet")
    assert len(why["manifests"]) == 2

    # collect: a dry run by default, against the manifests; nothing is young enough to go.
    plan = shell.json("collect", "--manifests", "kept.parquet")
    assert plan["report"]["dry_run"] is True
    assert plan["report"]["collected"] == 0
    assert plan["report"]["kept_recent"] == len(stored) - 1

    # protocol, --version, --help.
    assert shell.json("protocol") == {"repository": shell.url, "touch_records": False}
    assert shell.run("--version").stdout.decode().startswith("s3repo ")


def test_collect_deletes_only_with_delete_and_reports_the_table(
    moto_server: LocalS3, tmp_path: Path
) -> None:
    shell = Shell(moto_server, moto_server.create_bucket(), tmp_path)
    (tmp_path / "keep.bin").write_bytes(b"keep me")
    (tmp_path / "drop.bin").write_bytes(b"drop me")
    keep = shell.json("put", "keep.bin", "--manifest", "live.parquet")["files"][0]["digest"]
    drop = shell.json("put", "drop.bin")["files"][0]["digest"]
    moto_server.advance_clock(3 * 86400)  # past the default grace of a day
    try:
        dry = shell.run("collect", "--manifests", "live.parquet").stdout.decode()
        assert "would collect" in dry and "a dry run" in dry
        assert shell.json("stat", drop)["missing"] == []
        done = shell.json("collect", "--manifests", "live.parquet", "--delete")
    finally:
        moto_server.reset_clock()
    assert (done["report"]["collected"], done["report"]["live"]) == (1, 1)
    assert shell.json("stat", drop, code=3)["missing"] == [drop]
    assert shell.json("stat", keep)["missing"] == []


#: The README's exit-code table, row by row, each with a command that exits so.
EXIT_CASES = {
    0: ("stat", "{stored}"),
    1: ("--repo", "s3r://{bucket}/x", "--retries", "0", "--timeout", "1", "stat", "{stored}"),
    2: ("stat", "sha256:not-hex"),
    3: ("stat", "{absent}"),
    4: ("verify", "{tampered}"),
    5: ("put", "no-such-file"),
    6: ("collect", "--manifests", "live.parquet", "--delete"),
}


def test_each_exit_code_of_the_readme_table(moto_server: LocalS3, tmp_path: Path) -> None:
    shell = Shell(moto_server, moto_server.create_bucket(), tmp_path)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("| exit code |") :].split("\n\n")[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert [int(row.split("|")[1]) for row in rows] == sorted(EXIT_CASES)
    stored = shell.json("put", "-", stdin=b"stored")["files"][0]["digest"]
    tampered = shell.json("put", "-", stdin=b"tampered")["files"][0]["digest"]
    shell.overwrite(tampered, b"tamperex")
    (tmp_path / "live.bin").write_bytes(b"live")
    shell.run("put", "live.bin", "--manifest", "live.parquet")
    fields = {
        "stored": stored,
        "tampered": tampered,
        "absent": str(Digest.of(b"absent")),
        "bucket": shell.bucket,
    }
    for code, args in EXIT_CASES.items():
        if code == 1:
            dead = {**shell.env(), "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
            done = subprocess.run(
                [str(ENTRY_POINT), *(a.format(**fields) for a in args)],
                env=dead,
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 1, done.stderr
            continue
        if code == 6:
            _hold_a_collection(shell)
        shell.run(*(a.format(**fields) for a in args), code=code)


def _hold_a_collection(shell: Shell) -> None:
    """A fresh lease of a collection on every shard: the next collection must refuse."""
    shell.server.client().put_object(
        Bucket=shell.bucket, Key=f"{PREFIX}/collections/0000000000000000", Body=b'{"shards": []}'
    )


def test_a_get_corrupted_in_transit_quarantines_nothing(
    moto_server: LocalS3, tmp_path: Path
) -> None:
    """verify --quarantine through a proxy that flips a byte of the first GET: the second
    read is good, so the object is unconfirmed, stays, and the command exits 0."""
    shell = Shell(moto_server, moto_server.create_bucket(), tmp_path)
    data = os.urandom(200_000)
    digest = shell.json("put", "-", stdin=data)["files"][0]["digest"]
    flipped: list[str] = []

    def first_get_only(number: int, method: str, path: str) -> None:
        if request_kind(method, path) == "GET object" and not flipped:
            flipped.append(path)
            proxy.set_rates({})  # this one was drawn already: it is flipped, no other

    with FaultProxy(moto_server.port, rates={"flip": 1.0}, on_request=first_get_only) as proxy:
        env = {**shell.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint_url}
        done = subprocess.run(
            [str(ENTRY_POINT), "--json", "verify", "--all", "--quarantine"],
            env=env,
            capture_output=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert proxy.faults["flip"] == 1
    assert (report["unconfirmed"], report["corrupt"], report["quarantined"]) == ([digest], [], [])
    assert shell.run("get", digest).stdout == data
    assert shell.json("du")["quarantine"]["count"] == 0


def _read_until_exit(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    seen = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    return seen


def _on_a_terminal(shell: Shell, *args: str) -> bytes:
    """What the command draws on stderr when stderr is a terminal (of 100 columns)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [str(ENTRY_POINT), *args],
        env=shell.env(),
        cwd=shell.cwd,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    try:
        drawn = _read_until_exit(leader, proc)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
        assert proc.stdout is not None
        proc.stdout.close()
    return drawn


def test_progress_shows_on_a_terminal_and_not_on_a_pipe(
    moto_server: LocalS3, tmp_path: Path
) -> None:
    shell = Shell(moto_server, moto_server.create_bucket(), tmp_path)
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    piped = shell.run("put", "big.bin")
    assert piped.stderr == b""
    shell.remove(str(Digest.of((tmp_path / "big.bin").read_bytes())))
    drawn = _on_a_terminal(shell, "put", "big.bin")
    assert b"hash: 100%" in drawn and b"3.00M/3.00M" in drawn and b"B/s" in drawn, drawn
    (tmp_path / "many").mkdir()
    for n in range(5):
        (tmp_path / "many" / f"{n}.bin").write_bytes(os.urandom(1000 + n))
    assert b"5 objects" in _on_a_terminal(shell, "put", "many")
    assert shell.run("verify", "--all").stderr == b""
    drawn = _on_a_terminal(shell, "verify", "--all")
    assert b"verify" in drawn and b"6 objects" in drawn, drawn
    big = str(Digest.of((tmp_path / "big.bin").read_bytes()))
    drawn = _on_a_terminal(shell, "get", big, "-o", "copy.bin")
    assert b"3.00M/3.00M" in drawn, drawn
    assert (tmp_path / "copy.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()


@pytest.mark.parametrize(
    ("line", "offered"),
    [
        ("s3repo ve", ["verify"]),
        ("s3repo verify --qu", ["--quarantine"]),
        ("s3repo ma", ["manifest"]),
    ],
)
def test_the_shell_completes_commands_and_options(
    tmp_path: Path, line: str, offered: list[str]
) -> None:
    """What bash or zsh gets from argcomplete (registered with register-python-argcomplete)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    done = subprocess.run([str(ENTRY_POINT)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text().split() == offered
