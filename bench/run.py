"""mailbot's ingestion benchmark, in one run against the private Dovecot + SMTP stack.

    python -m bench.run [--messages N] [--json PATH] [--skip-peer] [--live N] [--profile]
    python -m bench.run --report bench/out/bench-20000.json   # the table of an earlier run

Starts the test suite's mail stack, writes a generated mailbox (bench/mailbox_gen.py)
straight into a fresh owner's Maildir, then measures, in this order:

1. the IMAP floor: a bare imapclient fetching exactly mailbot's header fields
   (``mailbot.parse.HEADER_FIELDS``) for every message, in batches of 500 UIDs;
2. the peer: ``mbsync`` mirroring INBOX and Sent to a local Maildir;
3. mailbot's backfill from an empty database (``mailbot run --once`` as a child
   process, its IMAP connection through a counting TCP proxy), then the check that
   it stored exactly the touchpoints the generator says it must;
4. a no-op sync (``run --once`` again);
5. live latency: the daemon runs while customer mail arrives by SMTP one message at a
   time; delivery to stored touchpoint, beside a bare IDLE client's notification delay;
   then SIGTERM and how long the daemon takes to exit;
6. start-up: opening the resulting database, and its size.

It prints a table and writes JSON (default bench/out/bench-N.json).  Every wait is
bounded.  See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient import __version__ as imapclient_version

from bench.mailbox_gen import (
    ALIAS,
    INTERNAL_DOMAIN,
    OWNER_NAME,
    MailboxGenerator,
    Truth,
    live_message,
)
from mailbot.parse import HEADER_FIELDS
from mailbot.store import journal_path, load_database
from tests.mailstack.stack import MailStack

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
FOLDERS = ("INBOX", "Sent")
BATCH = 500
SEED = 20240601

Say = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not measure what it was asked to (message says why)."""


@dataclass(frozen=True)
class Options:
    messages: int = 20_000
    live: int = 20
    skip_peer: bool = False
    seed: int = SEED
    profile: bool = False
    live_gap: float = 1.0  # seconds between live deliveries (the daemon re-enters IDLE)
    # the synthetic store: start-up is measured at scale_touchpoints, the short list at
    # twice that, both with scale_customers customers (0 skips this part)
    scale_touchpoints: int = 100_000
    scale_customers: int = 10_000


# ====================================================================== helpers


def _now() -> float:
    return time.perf_counter()


def _mb(n: float) -> float:
    return round(n / 1e6, 1)


def _pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MAILBOT_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return env


# A small process that starts every measured child and reaps it with wait4.  Why not
# Popen from here: Linux carries a process's peak RSS across exec (exec_mmap records the
# old memory map's high-water mark), so a child forked from this process, which holds
# the generator's data, would report this process's RSS as its own peak.  Children of
# this fresh, small interpreter report their own peak (the spawner's ~10 MB is the floor).
_SPAWNER = r"""
import json, os, sys, threading, time
lock = threading.Lock()
def send(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
def reap(rid, pid, started):
    _, status, usage = os.wait4(pid, 0)
    send({"id": rid, "pid": pid, "status": status, "maxrss_kb": usage.ru_maxrss,
          "seconds": time.monotonic() - started})
waiters = []
for line in sys.stdin:
    req = json.loads(line)
    try:
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
        started = time.monotonic()
        pid = os.posix_spawn(req["argv"][0], req["argv"], req["env"], file_actions=actions)
        os.close(fd)
    except OSError as exc:
        send({"id": req["id"], "error": str(exc)})
        continue
    send({"id": req["id"], "pid": pid})
    t = threading.Thread(target=reap, args=(req["id"], pid, started))
    t.start()
    waiters.append(t)
for t in waiters:
    t.join()
"""


class Spawner:
    """Starts children from a small helper process and reports each one's exact peak RSS."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-S", "-c", _SPAWNER],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=str(ROOT), env=_env())
        self._cond = threading.Condition()
        self._replies: dict[int, list[dict[str, Any]]] = {}
        self._next = 0
        self.children: list[Child] = []
        self._reader = threading.Thread(target=self._read, name="spawner", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self._cond:
                self._replies.setdefault(msg["id"], []).append(msg)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def spawn(self, argv: list[str], log: Path) -> tuple[int, int]:
        """Start ARGV (stdout and stderr to LOG); returns (request id, pid)."""
        assert self.proc.stdin is not None
        with self._cond:
            self._next += 1
            rid = self._next
        req = {"id": rid, "argv": argv, "log": str(log), "env": _env()}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        deadline = _now() + 30
        with self._cond:
            while not self._replies.get(rid):
                if _now() > deadline or self.proc.poll() is not None:
                    raise BenchError(f"the spawner did not start {argv[:3]}")
                self._cond.wait(0.1)
            first = self._replies[rid].pop(0)
        if "error" in first:
            raise BenchError(f"cannot start {argv[0]}: {first['error']}")
        return rid, int(first["pid"])

    def exited(self, rid: int) -> dict[str, Any] | None:
        with self._cond:
            left = self._replies.get(rid)
            return left[0] if left else None

    def close(self) -> None:
        for child in self.children:  # left running by an error or an interrupt
            child.kill()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_spawner: Spawner | None = None


@contextlib.contextmanager
def spawner() -> Iterator[Spawner]:
    """The spawner for this run (children started through :class:`Child`)."""
    global _spawner
    if _spawner is not None:
        yield _spawner
        return
    _spawner = Spawner()
    try:
        yield _spawner
    finally:
        _spawner.close()
        _spawner = None


class Child:
    """A child process (started by the spawner) with its exact peak RSS and wall time."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        if _spawner is None:
            raise BenchError("Child() needs a running spawner (use 'with spawner():')")
        self.argv = argv
        self.log_path = log_path
        self.started = _now()
        self.rid, self.pid = _spawner.spawn(argv, log_path)
        _spawner.children.append(self)
        self.hwm_kb = 0  # VmHWM sampled from /proc while it runs (a cross-check)
        self.maxrss_kb = 0  # from wait4: exact
        self.returncode: int | None = None
        self.elapsed = 0.0

    def _sample(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
                    break

    def poll(self) -> int | None:
        """The exit code once the child has exited; None while it runs."""
        if self.returncode is not None:
            return self.returncode
        assert _spawner is not None
        done = _spawner.exited(self.rid)
        if done is None:
            self._sample()
            return None
        self.elapsed = float(done["seconds"])  # spawn to exit, timed by the spawner
        self.maxrss_kb = int(done["maxrss_kb"])
        self.returncode = os.waitstatus_to_exitcode(int(done["status"]))
        return self.returncode

    def wait(self, timeout: float, interval: float = 0.01) -> int:
        deadline = _now() + timeout
        while True:
            rc = self.poll()
            if rc is not None:
                return rc
            if _now() >= deadline:
                self.kill()
                raise BenchError(f"{' '.join(self.argv[-3:])} ran longer than {timeout:.0f} s; "
                                 f"killed (log: {self.log_path})")
            time.sleep(interval)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            for _ in range(500):
                if self.poll() is not None:
                    break
                time.sleep(0.01)

    @property
    def peak_rss_mb(self) -> float:
        return round(self.maxrss_kb / 1024, 1)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class CountingProxy:
    """A TCP relay on 127.0.0.1 that counts the bytes each way (threads, 64 KiB buffers)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = int(self.server.getsockname()[1])
        self.down = 0  # server -> client
        self.up = 0  # client -> server
        self.connections = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._socks += [client, upstream]
                for src, dst, down in ((upstream, client, True), (client, upstream, False)):
                    t = threading.Thread(target=self._pipe, args=(src, dst, down), daemon=True)
                    self._threads.append(t)
                    t.start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if down:
                        self.down += len(data)
                    else:
                        self.up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def take(self) -> dict[str, int]:
        """The counts since the last call (and reset them)."""
        with self._lock:
            out = {"bytes_down": self.down, "bytes_up": self.up,
                   "connections": self.connections}
            self.down = self.up = self.connections = 0
        return out

    def close(self) -> None:
        self._closing.set()
        self.server.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in threads:
            t.join(timeout=5)


# ====================================================================== mailbox


def load_maildir(stack: MailStack, owner: str, gen: MailboxGenerator, say: Say
                 ) -> dict[str, Any]:
    """Write the generated mailbox straight into the owner's Maildir (INBOX and .Sent).

    Dovecot's Maildir++ layout: INBOX is Maildir/{cur,new,tmp}, a folder "Sent" is
    Maildir/.Sent/ (with a ``maildirfolder`` marker).  File names carry the size (S=)
    and the CRLF size (W=) the way Dovecot writes them; the file's mtime is the
    message's INTERNALDATE.  Files belong to the Maildir's owner (``mail`` under root).
    """
    local = owner.split("@")[0]
    root = stack.directory / "mail" / stack.domain / local / "Maildir"
    if not (root / "cur").is_dir():
        raise BenchError(f"no Maildir for {owner} at {root} (did add_user change its layout?)")
    st = root.stat()
    chown = os.geteuid() == 0
    sent = root / ".Sent"
    for d in (sent, sent / "cur", sent / "new", sent / "tmp"):
        d.mkdir(mode=0o700, exist_ok=True)
        if chown:
            os.chown(d, st.st_uid, st.st_gid)
    marker = sent / "maildirfolder"
    marker.touch()
    if chown:
        os.chown(marker, st.st_uid, st.st_gid)
    dirs = {"INBOX": root / "cur", "Sent": sent / "cur"}
    started = _now()
    pid = os.getpid()
    for n, mail in enumerate(gen.mails(), start=1):
        ts = int(mail.when.timestamp())
        flags = "S" if mail.seen else ""
        path = dirs[mail.folder] / (
            f"{ts}.M{n}P{pid}.bench,S={len(mail.raw)},W={mail.imap_size}:2,{flags}")
        with open(path, "xb") as f:
            f.write(mail.raw)
        if chown:
            os.chown(path, st.st_uid, st.st_gid)
        os.utime(path, (ts, ts))
        if n % 5000 == 0:
            say(f"  wrote {n} messages ({_mb(gen.truth.bytes_disk)} MB)")
    elapsed = _now() - started
    return {"write_seconds": round(elapsed, 2), "maildir": str(root)}


def check_mailbox(stack: MailStack, owner: str, truth: Truth) -> dict[str, Any]:
    """SELECT both folders (Dovecot indexes the new files), compare counts and sizes."""
    out: dict[str, Any] = {}
    started = _now()
    with stack.imap(owner, timeout=300) as c:
        for folder in FOLDERS:
            info = c.select_folder(folder, readonly=True)
            out[f"{folder.lower()}_exists"] = int(info[b"EXISTS"])
        out["index_seconds"] = round(_now() - started, 2)
        folders = {name: [f.decode() if isinstance(f, bytes) else str(f) for f in flags]
                   for flags, _d, name in c.list_folders()}
        out["sent_flags"] = folders.get("Sent", [])
        size = 0
        ordered = True
        for folder in FOLDERS:
            c.select_folder(folder, readonly=True)
            uids = sorted(c.search(["ALL"]))
            last = None
            for i in range(0, len(uids), 2000):
                resp = c.fetch(uids[i : i + 2000], ["RFC822.SIZE", "INTERNALDATE"])
                for uid in sorted(resp):
                    size += int(resp[uid][b"RFC822.SIZE"])
                    when = resp[uid][b"INTERNALDATE"]
                    if last is not None and when < last:
                        ordered = False
                    last = when
        out["imap_bytes"] = size
        out["uids_in_date_order"] = ordered
    problems = []
    for folder in FOLDERS:
        want, got = truth.messages[folder], out[f"{folder.lower()}_exists"]
        if want != got:
            problems.append(f"{folder}: {got} messages over IMAP, generator wrote {want}")
    if size != truth.bytes_imap:
        problems.append(f"RFC822.SIZE total {size} != generator's {truth.bytes_imap}")
    if problems:
        raise BenchError("the mailbox is not what was generated: " + "; ".join(problems))
    return out


# ====================================================================== floor and peer


def imap_floor(port: int, user: str, password: str, batch: int = BATCH) -> dict[str, Any]:
    """A bare imapclient fetch of HEADER_FIELDS for every message of INBOX and Sent."""
    spec = f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in HEADER_FIELDS)})]"
    started = _now()
    n = header_bytes = 0
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=120)
    try:
        client.login(user, password)
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            for i in range(0, len(uids), batch):
                resp = client.fetch(uids[i : i + batch], [spec])
                n += len(resp)
                for data in resp.values():
                    for key, value in data.items():
                        if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
                            header_bytes += len(value)
        client.logout()
    except BaseException:
        client.shutdown()
        raise
    elapsed = _now() - started
    return {"messages": n, "seconds": round(elapsed, 3), "rate": round(n / elapsed, 1),
            "header_bytes": header_bytes}


def warm_up(port: int, user: str, password: str, batch: int = BATCH) -> dict[str, Any]:
    """Fetch what mailbot's header pass fetches once, so Dovecot's cache is warm for all."""
    spec = f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in HEADER_FIELDS)})]"
    started = _now()
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=300) as client:
        client.login(user, password)
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            for i in range(0, len(uids), batch):
                client.fetch(uids[i : i + batch],
                             [spec, "BODYSTRUCTURE", "INTERNALDATE", "RFC822.SIZE"])
        client.logout()
    return {"seconds": round(_now() - started, 3)}


def ensure_mbsync(say: Say) -> str | None:
    path = shutil.which("mbsync")
    if path:
        return path
    if os.geteuid() != 0:
        say("  mbsync is missing (apt-get install isync); skipping the peer")
        return None
    say("  installing isync (mbsync) from Debian")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "isync"]
    for attempt in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                              check=False)
        if proc.returncode == 0:
            break
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env,
                           timeout=600, check=False)
    return shutil.which("mbsync")


def run_peer(stack: MailStack, owner: str, workdir: Path, truth: Truth, say: Say
             ) -> dict[str, Any]:
    mbsync = ensure_mbsync(say)
    if mbsync is None:
        return {"skipped": "mbsync not installed"}
    version = subprocess.run([mbsync, "--version"], capture_output=True, text=True,
                             check=False, timeout=10).stdout.strip()
    mirror = workdir / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "mbsyncrc"
    cfg.write_text(
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {stack.imap_port}\nUser {owner}\n"
        f"Pass {stack.password}\nSSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {mirror}/\nInbox {mirror}/INBOX\nSubFolders Verbatim\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX Sent\nCreate Near\n"
        "Sync Pull\nSyncState *\nExpunge None\nCopyArrivalDate yes\n")
    cfg.chmod(0o600)
    child = Child([mbsync, "-c", str(cfg), "-q", "-a"], workdir / "mbsync.log")
    rc = child.wait(timeout=max(600.0, truth.total / 5))
    if rc != 0:
        raise BenchError(f"mbsync failed (exit {rc}):\n{child.log_tail()}")
    files = sum(1 for p in mirror.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    if files != truth.total:
        say(f"  WARNING: mbsync mirrored {files} messages, the mailbox holds {truth.total}")
    result = {"seconds": round(child.elapsed, 2), "rate": round(truth.total / child.elapsed, 1),
              "messages": files, "peak_rss_mb": child.peak_rss_mb, "version": version}
    shutil.rmtree(mirror, ignore_errors=True)
    return result


# ====================================================================== mailbot


def write_config(directory: Path, stack: MailStack, owner: str, imap_port: int) -> Path:
    """A config for the owner: plain IMAP through the proxy, STARTTLS SMTP, 3000 days.

    The digest is scheduled for a weekday three days ahead so that no digest is built or
    sent during the run (this is an ingestion benchmark).
    """
    directory.mkdir(parents=True, exist_ok=True)
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a").lower()
    text = f"""
[owner]
name = "{OWNER_NAME}"
addresses = ["{owner}", "{ALIAS}"]
internal_domains = ["{INTERNAL_DOMAIN}"]
timezone = "UTC"
signature = "Olivia"

[imap]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{owner}"
password = "{stack.password}"
timeout_seconds = 60

[smtp]
host = "127.0.0.1"
port = {stack.smtp_port}
security = "starttls"
username = "{owner}"
password = "{stack.password}"
ca_file = "{stack.cafile}"

[data]
dir = "{directory / 'data'}"

[ingest]
history_days = 3000

[digest]
days = "{day}"
"""
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def mailbot_argv(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailbot", "--config", str(config), *args]


_RATE_LINE = re.compile(r"(\S+): (\d+) messages in ([\d.]+) s \((\d+)/s\)")
_SUMMARY_LINE = re.compile(r"(\S+): (\d+ messages, \d+ customer, \d+ new touchpoints; .*)$")


def _log_facts(text: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"folders": {}, "summaries": {}}
    for m in _RATE_LINE.finditer(text):
        facts["folders"][m.group(1)] = {"messages": int(m.group(2)),
                                        "seconds": float(m.group(3)), "rate": int(m.group(4))}
    for line in text.splitlines():
        found = _SUMMARY_LINE.search(line)
        if found:
            facts["summaries"][found.group(1)] = found.group(2)
    facts["errors"] = [line for line in text.splitlines()
                       if " ERROR " in line or "Traceback" in line][:10]
    return facts


def run_once(config: Path, proxy: CountingProxy, log_path: Path, timeout: float
             ) -> dict[str, Any]:
    proxy.take()
    child = Child(mailbot_argv(config, "run", "--once"), log_path)
    rc = child.wait(timeout=timeout)
    counts = proxy.take()
    if rc != 0:
        raise BenchError(f"mailbot run --once exited {rc}:\n{child.log_tail()}")
    return {"seconds": round(child.elapsed, 3), "peak_rss_mb": child.peak_rss_mb,
            "rss_sampled_mb": round(child.hwm_kb / 1024, 1),
            "bytes_read": counts["bytes_down"], "bytes_sent": counts["bytes_up"],
            "connections": counts["connections"],
            "log": _log_facts(log_path.read_text(errors="replace"))}


def stored_touchpoints(config: Path) -> dict[str, Any]:
    """What mailbot stored: ``customers --json`` (the CLI) and the database's keys."""
    started = _now()
    proc = subprocess.run(mailbot_argv(config, "customers", "--json"), capture_output=True,
                          text=True, env=_env(), cwd=str(ROOT), timeout=300, check=False)
    elapsed = _now() - started
    if proc.returncode != 0:
        raise BenchError(f"mailbot customers --json failed: {proc.stderr.strip()}")
    rows = json.loads(proc.stdout)
    db = load_database(config.parent / "data" / "mailbot.json").data
    docs = list((db.get("touchpoints") or {}).values())
    return {"rows": rows, "docs": docs, "customers_json_seconds": round(elapsed, 3)}


def compare(truth: Truth, stored: dict[str, Any], extra: dict[tuple[str, str, str], str]
            ) -> dict[str, Any]:
    """mailbot's touchpoints against the generator's answer, with examples of any difference.

    EXTRA: expected keys beyond the generated mailbox (live mail), key -> subject.
    """
    rows = stored["rows"]
    want_keys = dict(truth.keys)
    for key, subject in extra.items():
        want_keys[key] = ("live", subject, "INBOX")
    per_want = Counter(c for _m, _d, c in want_keys)
    per_got = Counter({r["address"]: int(r["touchpoints"]) for r in rows if r["touchpoints"]})
    got_total = sum(int(r["touchpoints"]) for r in rows)
    got_keys = {(d["message_id"], d["direction"], d["contact"]): d for d in stored["docs"]}
    missing = [k for k in want_keys if k not in got_keys]
    unexpected = [k for k in got_keys if k not in want_keys]
    # a message without Message-ID: mailbot makes its own id; pair those by contact+subject
    if missing and unexpected:
        free: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
        for k in unexpected:
            doc = got_keys[k]
            free.setdefault((k[1], k[2], doc.get("subject", "")), []).append(k)
        still_missing = []
        for k in missing:
            if k[0].startswith("noid:"):
                cand = free.get((k[1], k[2], want_keys[k][1]))
                if cand:
                    unexpected.remove(cand.pop())
                    continue
            still_missing.append(k)
        missing = still_missing
    by_kind_missing = Counter(want_keys[k][0] for k in missing)
    examples_missing = [
        {"kind": want_keys[k][0], "folder": want_keys[k][2], "subject": want_keys[k][1],
         "message_id": k[0], "direction": k[1], "contact": k[2]} for k in missing[:8]]
    examples_unexpected: list[dict[str, Any]] = []
    by_kind_unexpected: Counter[str] = Counter()
    for k in unexpected:
        kind, folder, subject = truth.by_id.get(k[0], ("?", "?", got_keys[k].get("subject")))
        by_kind_unexpected[kind] += 1
        if len(examples_unexpected) < 8:
            doc = got_keys[k]
            examples_unexpected.append(
                {"kind": kind, "folder": folder, "subject": subject, "message_id": k[0],
                 "direction": k[1], "contact": k[2], "reason": doc.get("reason", "")})
    diff_contacts = sorted(a for a in set(per_want) | set(per_got)
                           if per_want.get(a, 0) != per_got.get(a, 0))
    ok = (got_total == len(want_keys) and len(per_got) == len(per_want) and not missing
          and not unexpected and not diff_contacts)
    return {
        "ok": ok,
        "expected_touchpoints": len(want_keys),
        "stored_touchpoints": got_total,
        "db_touchpoints": len(stored["docs"]),
        "expected_customers": len(per_want),
        "stored_customers": len(per_got),
        "missing": len(missing),
        "missing_by_kind": dict(by_kind_missing),
        "missing_examples": examples_missing,
        "unexpected": len(unexpected),
        "unexpected_by_kind": dict(by_kind_unexpected),
        "unexpected_examples": examples_unexpected,
        "contacts_differing": len(diff_contacts),
        "contacts_differing_examples": [
            {"address": a, "expected": per_want.get(a, 0), "stored": per_got.get(a, 0)}
            for a in diff_contacts[:8]],
        "customers_json_seconds": stored["customers_json_seconds"],
    }


# ====================================================================== live


class IdleWatcher:
    """A bare imapclient IDLE client on INBOX, timestamping every EXISTS it is told of."""

    def __init__(self, stack: MailStack, owner: str) -> None:
        self.client = stack.imap(owner, timeout=30)
        info = self.client.select_folder("INBOX", readonly=True)
        self.exists = int(info[b"EXISTS"])
        self.events: list[tuple[float, int]] = []
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.client.idle()
        self.thread = threading.Thread(target=self._run, name="idle-watcher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = _now() + 3600
        try:
            while not self.stopping.is_set() and _now() < deadline:
                responses = self.client.idle_check(timeout=0.25)
                at = _now()
                for r in responses:
                    if isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS":
                        with self.cond:
                            self.events.append((at, int(r[0])))
                            self.cond.notify_all()
        except BaseException as exc:  # reported by wait_for()
            self.error = exc

    def wait_for(self, count: int, timeout: float) -> float | None:
        """When EXISTS first reached COUNT (perf_counter time), or None after TIMEOUT."""
        deadline = _now() + timeout
        with self.cond:
            while True:
                for at, n in self.events:
                    if n >= count:
                        return at
                left = deadline - _now()
                if left <= 0 or self.error is not None:
                    return None
                self.cond.wait(min(left, 0.1))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        try:
            self.client.idle_done()
            self.client.logout()
        except Exception:
            self.client.shutdown()


def _db_has(path: Path, needle: bytes, state: dict[str, Any]) -> bool:
    """Whether the committed database (snapshot or journal) mentions NEEDLE.

    Each file is re-read only when it changed. A commit is durable once its journal
    line is written, and the snapshot is replaced only when the journal is compacted.
    """
    found = False
    for part in (path, journal_path(path)):
        try:
            st = part.stat()
        except FileNotFoundError:
            continue
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cache = state.setdefault(str(part), {})
        if cache.get("sig") != sig:
            cache["sig"] = sig
            cache["data"] = part.read_bytes()
        found = found or needle in cache["data"]
    return found


def _wait_db(path: Path, needle: bytes, timeout: float, state: dict[str, Any]
             ) -> float | None:
    deadline = _now() + timeout
    while True:
        if _db_has(path, needle, state):
            return _now()
        if _now() >= deadline:
            return None
        time.sleep(0.02)


def run_live(stack: MailStack, owner: str, gen: MailboxGenerator, config: Path,
             proxy: CountingProxy, opts: Options, workdir: Path, say: Say
             ) -> tuple[dict[str, Any], dict[tuple[str, str, str], str]]:
    """Daemon + bare IDLE client; N customer messages by SMTP, one at a time."""
    db = config.parent / "data" / "mailbot.json"
    customers = gen.pick_customers(max(opts.live, 1) + 1)
    expected: dict[tuple[str, str, str], str] = {}
    watcher = IdleWatcher(stack, owner)
    proxy.take()
    daemon = Child(mailbot_argv(config, "run"), workdir / "daemon.log")
    state: dict[str, Any] = {}
    lat: list[float] = []
    idle: list[float] = []
    lost: list[str] = []
    try:
        started = _now()
        # warm-up: the first message after start-up proves the daemon is in its watch loop
        now = datetime.now(UTC).replace(microsecond=0)
        mid, raw = live_message(owner, customers[0], 0, now)
        stack.deliver(raw, customers[0][1], [owner])
        exists = watcher.exists + 1
        if _wait_db(db, mid.encode(), 120, state) is None:
            raise BenchError(f"the daemon did not store the warm-up message in 120 s:\n"
                             f"{daemon.log_tail()}")
        expected[(mid, "in", customers[0][1])] = f"Quick question {0}"
        ready = _now() - started
        watcher.wait_for(exists, 10)
        time.sleep(opts.live_gap)
        for i in range(1, opts.live + 1):
            if daemon.poll() is not None:
                raise BenchError(f"the daemon exited ({daemon.returncode}):\n"
                                 f"{daemon.log_tail()}")
            who = customers[i % len(customers)]
            now = datetime.now(UTC).replace(microsecond=0)
            mid, raw = live_message(owner, who, i, now, html_part=i % 2 == 0)
            stack.deliver(raw, who[1], [owner])
            t0 = _now()
            exists += 1
            expected[(mid, "in", who[1])] = f"Quick question {i}"
            t_db = _wait_db(db, mid.encode(), 30, state)
            t_idle = watcher.wait_for(exists, 10)
            if t_db is None:
                lost.append(mid)
            else:
                lat.append(t_db - t0)
            if t_idle is not None:
                idle.append(max(t_idle - t0, 0.0))
            time.sleep(opts.live_gap)
        stop_started = _now()
        os.kill(daemon.pid, signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=30, interval=0.005)
        except BenchError:
            rc = -9
        exit_seconds = _now() - stop_started
    finally:
        daemon.kill()
        watcher.close()
    counts = proxy.take()
    result = {
        "delivered": opts.live,
        "stored": len(lat),
        "lost": lost,
        "latency_p50": round(_pct(lat, 50), 3),
        "latency_p95": round(_pct(lat, 95), 3),
        "latency_max": round(max(lat), 3) if lat else None,
        "idle_seen": len(idle),
        "idle_p50": round(_pct(idle, 50), 3),
        "idle_p95": round(_pct(idle, 95), 3),
        "latencies": [round(x, 3) for x in lat],
        "idle_delays": [round(x, 3) for x in idle],
        "daemon_ready_seconds": round(ready, 2),
        "sigterm_exit_seconds": round(exit_seconds, 3),
        "daemon_exit_code": rc,
        "daemon_peak_rss_mb": daemon.peak_rss_mb,
        "daemon_bytes_read": counts["bytes_down"],
        "daemon_log": _log_facts(daemon.log_path.read_text(errors="replace"))["errors"],
    }
    if lost:
        say(f"  WARNING: {len(lost)} live message(s) never reached the database")
    return result, expected


# ====================================================================== start-up


_OPEN_SCRIPT = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from mailbot.store import Store
t1 = time.perf_counter()
store = Store(Path(sys.argv[1]))
t2 = time.perf_counter()
n = store.touchpoint_count()
store.close()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "touchpoints": n}))
"""


def _scale_child(workdir: Path, name: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run ``python -m bench.scale ARGS`` as a measured child; its JSON line and peak RSS."""
    child = Child([sys.executable, "-m", "bench.scale", *args], workdir / f"{name}.log")
    if child.wait(timeout=900) != 0:
        raise BenchError(f"bench.scale {args[0]} failed:\n{child.log_tail()}")
    line = (workdir / f"{name}.log").read_text().strip().splitlines()[-1]
    return json.loads(line), child.peak_rss_mb


def measure_scale(workdir: Path, opts: Options, say: Say, runs: int = 3) -> dict[str, Any]:
    """Start-up at N touchpoints and the short list at 2N, on a synthetic store.

    The mailbox part stores about 0.74 touchpoints per message, fewer than the sizes the
    targets name, so ``bench.scale`` builds exactly those sizes with the Store API.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    n, customers = opts.scale_touchpoints, opts.scale_customers
    built, _ = _scale_child(workdir, "build-1", "build", str(data), "--customers",
                            str(customers), "--touchpoints", str(n))
    opens = [_scale_child(workdir, f"open-{i}", "open", str(data)) for i in range(runs)]
    startup = {"touchpoints": opens[0][0]["touchpoints"],
               "open_seconds": round(statistics.median(o["open"] for o, _ in opens), 3),
               "import_seconds": round(statistics.median(o["import"] for o, _ in opens), 3),
               "peak_rss_mb": max(rss for _, rss in opens),
               "db_bytes": _db_bytes(data / "mailbot.json"),
               "build_seconds": built["build_seconds"]}
    say(f"  start-up: {startup['open_seconds']:.3f} s to open {startup['touchpoints']} "
        f"touchpoints ({_mb(startup['db_bytes'])} MB), {startup['peak_rss_mb']} MB RSS")
    _scale_child(workdir, "build-2", "build", str(data), "--customers", str(customers),
                 "--touchpoints", str(2 * n))
    config = workdir / "config.toml"
    config.write_text(f"""
[owner]
name = "{OWNER_NAME}"
addresses = ["owner@linen.example"]
timezone = "UTC"

[imap]
host = "127.0.0.1"
username = "owner@linen.example"
password = "unused"

[smtp]
host = "127.0.0.1"

[data]
dir = "{data}"
""", encoding="utf-8")
    lists = [_scale_child(workdir, f"shortlist-{i}", "shortlist", str(config))
             for i in range(runs)]
    first = lists[0][0]
    shortlist = {"touchpoints": first["touchpoints"], "customers": first["customers"],
                 "picks": first["picks"], "reasons": first["reasons"],
                 "compose_seconds": round(statistics.median(r["compose"] for r, _ in lists), 3),
                 "first_seconds": round(statistics.median(r["first"] for r, _ in lists), 3),
                 "open_seconds": round(statistics.median(r["open"] for r, _ in lists), 3),
                 "peak_rss_mb": max(rss for _, rss in lists)}
    say(f"  short list: {shortlist['compose_seconds']:.3f} s for {shortlist['customers']} "
        f"customers, {shortlist['touchpoints']} touchpoints ({shortlist['picks']} picks); "
        f"{shortlist['first_seconds']:.3f} s the first time after opening")
    return {"startup": startup, "shortlist": shortlist}


def _db_bytes(path: Path) -> int:
    """The database's size on disk: snapshot plus journal."""
    j = journal_path(path)
    return path.stat().st_size + (j.stat().st_size if j.exists() else 0)


def measure_startup(config: Path, workdir: Path, runs: int = 3) -> dict[str, Any]:
    data = config.parent / "data"
    opens, imports, rss = [], [], []
    n = 0
    for i in range(runs):
        log = workdir / f"open-{i}.log"
        script = workdir / "open_store.py"
        script.write_text(_OPEN_SCRIPT)
        child = Child([sys.executable, str(script), str(data)], log)
        rc = child.wait(timeout=300)
        if rc != 0:
            raise BenchError(f"opening the store failed:\n{child.log_tail()}")
        facts = json.loads(log.read_text().strip().splitlines()[-1])
        opens.append(facts["open"])
        imports.append(facts["import"])
        rss.append(child.peak_rss_mb)
        n = facts["touchpoints"]
    return {"open_seconds": round(statistics.median(opens), 3),
            "import_seconds": round(statistics.median(imports), 3),
            "touchpoints": n, "db_bytes": _db_bytes(data / "mailbot.json"),
            "peak_rss_mb": max(rss)}


# ====================================================================== profile


def profile_backfill(stack: MailStack, owner: str, workdir: Path, messages: int, say: Say
                     ) -> dict[str, Any]:
    """Backfill again into a fresh database under py-spy, then a no-op sync; summarise.

    py-spy samples at 200 Hz with ``--idle`` (time waiting for the server counts too);
    the raw stacks go to bench/out/profile-N.txt and profile-N-noop.txt.
    """
    pyspy = shutil.which("py-spy", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                         os.environ.get("PATH", "")]))
    if pyspy is None:
        return {"skipped": "py-spy not installed (pip install py-spy into the venv)"}
    config = write_config(workdir / "profile", stack, owner, stack.imap_port)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for label, suffix in (("backfill", ""), ("noop", "-noop")):
        raw = workdir / f"profile{suffix}.txt"
        child = Child([pyspy, "record", "--idle", "--rate", "200", "--format", "raw", "-o",
                       str(raw), "--", *mailbot_argv(config, "run", "--once")],
                      workdir / f"profile{suffix}.log")
        rc = child.wait(timeout=max(600.0, messages / 5))
        if rc != 0 or not raw.exists():
            out[label] = {"skipped": f"py-spy failed (exit {rc}): {child.log_tail(5)}"}
            continue
        summary = summarise_profile(raw.read_text())
        dest = OUT_DIR / f"profile-{messages}{suffix}.txt"
        shutil.copyfile(raw, dest)
        summary["raw"] = str(dest)
        summary["seconds"] = round(child.elapsed, 2)
        say(f"  {label} profile: {dest}")
        out[label] = summary
    return out


def summarise_profile(text: str, top: int = 25) -> dict[str, Any]:
    """Self time by function and total time by mailbot function, from py-spy's raw stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        if frames and frames[0].startswith(("process ", "thread ")):
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += n
        own[_frame(frames[-1])] += n
        for f in {_frame(f) for f in frames}:
            total[f] += n

    def share(c: Counter[str], only: Callable[[str], bool]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / samples, 1)) for k, v in c.most_common() if only(k)][:top]

    return {"samples": samples,
            "self": share(own, lambda k: True),
            "inclusive_mailbot": share(total, lambda k: "mailbot/" in k or "(mailbot" in k)}


def _frame(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"; drop the line number
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(str(ROOT) + "/", "")
    return f"{func} ({path})"


# ====================================================================== the run


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dovecot = shutil.which("dovecot", path=os.environ.get("PATH", "") + ":/usr/sbin")
    version = ""
    if dovecot:
        version = subprocess.run([dovecot, "--version"], capture_output=True, text=True,
                                 check=False, timeout=10).stdout.strip()
    git = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), "status",
                                "--porcelain", "--", "mailbot"],
                               capture_output=True, text=True, timeout=10, check=False)
        git = {"commit": head.stdout.strip(), "mailbot_dirty": bool(dirty.stdout.strip())}
    return {"git": git, "cpus": os.cpu_count(), "cpu": cpu,
            "python": platform.python_version(),
            "kernel": platform.release(), "dovecot": version,
            "imapclient": imapclient_version}


def run_bench(stack: MailStack, opts: Options, workdir: Path, say: Say = print
              ) -> dict[str, Any]:
    """Everything but starting and stopping the stack; returns the results (JSON-able)."""
    result: dict[str, Any] = {
        "schema": 1, "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"messages": opts.messages, "live": opts.live, "seed": opts.seed,
                    "skip_peer": opts.skip_peer, "batch": BATCH},
        "machine": machine(),
    }
    with spawner():
        return _run_bench(stack, opts, workdir, say, result)


def _run_bench(stack: MailStack, opts: Options, workdir: Path, say: Say,
               result: dict[str, Any]) -> dict[str, Any]:
    owner = stack.new_user("owner")
    say(f"owner {owner}; generating {opts.messages} messages (seed {opts.seed})")
    t = _now()
    gen = MailboxGenerator(owner, opts.messages, seed=opts.seed)
    loaded = load_maildir(stack, owner, gen, say)
    truth = gen.truth
    result["mailbox"] = {**truth.summary(), **loaded,
                         "generate_and_write_seconds": round(_now() - t, 2)}
    say(f"  {truth.total} messages ({truth.messages['INBOX']} INBOX, {truth.messages['Sent']} "
        f"Sent), {_mb(truth.bytes_imap)} MB; expect {truth.touchpoints} touchpoints from "
        f"{truth.customers} customers")
    result["mailbox"].update(check_mailbox(stack, owner, truth))

    say("floor: bare imapclient header fetch")
    cold = imap_floor(stack.imap_port, owner, stack.password)
    warm = warm_up(stack.imap_port, owner, stack.password)
    floor = imap_floor(stack.imap_port, owner, stack.password)
    floor["cold"] = cold
    floor["header_pct"] = round(100 * floor["header_bytes"] / truth.bytes_imap, 2)
    floor["warm_up_seconds"] = warm["seconds"]
    result["floor"] = floor
    say(f"  {floor['rate']:.0f} msg/s ({floor['seconds']:.2f} s; cold {cold['rate']:.0f} msg/s)")

    if opts.skip_peer:
        result["peer"] = {"skipped": "--skip-peer"}
    else:
        say("peer: mbsync mirror of INBOX and Sent")
        result["peer"] = run_peer(stack, owner, workdir, truth, say)
        if "seconds" in result["peer"]:
            say(f"  {result['peer']['seconds']:.2f} s")

    proxy = CountingProxy(stack.imap_port)
    try:
        config = write_config(workdir / "mailbot", stack, owner, proxy.port)
        say("mailbot backfill: run --once from an empty database")
        timeout = max(600.0, opts.messages / 10)
        back = run_once(config, proxy, workdir / "backfill.log", timeout)
        back["rate"] = round(truth.total / back["seconds"], 1)
        back["x_floor"] = round(back["seconds"] / floor["seconds"], 2)
        back["bytes_pct"] = round(100 * back["bytes_read"] / truth.bytes_imap, 2)
        back["bytes_per_message"] = round(back["bytes_read"] / truth.total)
        if "seconds" in result["peer"]:
            back["x_peer"] = round(back["seconds"] / result["peer"]["seconds"], 2)
        result["backfill"] = back
        say(f"  {back['seconds']:.2f} s, {back['rate']:.0f} msg/s, {back['x_floor']}x floor, "
            f"{_mb(back['bytes_read'])} MB read ({back['bytes_pct']}%), "
            f"{back['peak_rss_mb']} MB RSS")
        check = compare(truth, stored_touchpoints(config), {})
        result["correctness"] = {"backfill": check}
        _report_check("backfill", check, say)

        say("no-op sync: run --once again")
        noop = run_once(config, proxy, workdir / "noop.log", 300)
        result["noop"] = noop
        say(f"  {noop['seconds']:.2f} s, {noop['bytes_read']} bytes read")

        if opts.live > 0:
            say(f"live: {opts.live} messages by SMTP while the daemon runs")
            live, extra = run_live(stack, owner, gen, config, proxy, opts, workdir, say)
            result["live"] = live
            say(f"  stored p50 {live['latency_p50']:.3f} s, p95 {live['latency_p95']:.3f} s; "
                f"bare IDLE p50 {live['idle_p50']:.3f} s, p95 {live['idle_p95']:.3f} s; "
                f"SIGTERM exit {live['sigterm_exit_seconds']:.2f} s")
            check = compare(truth, stored_touchpoints(config), extra)
            result["correctness"]["after_live"] = check
            _report_check("after live", check, say)
    finally:
        proxy.close()

    say("start-up: open the database")
    result["startup"] = measure_startup(config, workdir)
    say(f"  {result['startup']['open_seconds']:.3f} s for "
        f"{result['startup']['touchpoints']} touchpoints, "
        f"{_mb(result['startup']['db_bytes'])} MB file")
    if opts.scale_touchpoints > 0:
        say(f"scale: a synthetic store of {opts.scale_customers} customers")
        result["scale"] = measure_scale(workdir / "scale", opts, say)
    if opts.profile:
        say("profile: backfill again under py-spy")
        result["profile"] = profile_backfill(stack, owner, workdir, opts.messages, say)
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def _report_check(what: str, check: dict[str, Any], say: Say) -> None:
    if check["ok"]:
        say(f"  {what}: touchpoints match ({check['stored_touchpoints']} from "
            f"{check['stored_customers']} customers)")
        return
    say(f"  !!! {what}: MISMATCH: stored {check['stored_touchpoints']} touchpoints from "
        f"{check['stored_customers']} customers, expected {check['expected_touchpoints']} from "
        f"{check['expected_customers']}")
    say(f"  !!! missing {check['missing']} {check['missing_by_kind']}; unexpected "
        f"{check['unexpected']} {check['unexpected_by_kind']}")
    for ex in check["missing_examples"][:4] + check["unexpected_examples"][:4]:
        say(f"  !!!   {json.dumps(ex, ensure_ascii=False)}")


# ====================================================================== output


def table(r: dict[str, Any]) -> str:
    mb = r["mailbox"]
    fl = r["floor"]
    rows: list[tuple[str, str, str]] = [
        ("mailbox", f"{mb['messages']:,} msgs ({mb['inbox']:,} INBOX, {mb['sent']:,} Sent), "
                    f"{_mb(mb['bytes_imap']):,} MB",
         f"{mb['correspondents']:,} correspondents, {mb['large_attachments']} attachments "
         f"1-5 MB; expect {mb['expected_touchpoints']:,} touchpoints / "
         f"{mb['expected_customers']:,} customers"),
        ("floor (bare imapclient headers)", f"{fl['rate']:,.0f} msg/s",
         f"{fl['seconds']:.2f} s warm; cold {fl['cold']['rate']:,.0f} msg/s"),
    ]
    peer = r.get("peer", {})
    rows.append(("peer (mbsync mirror)",
                 f"{peer['seconds']:.2f} s" if "seconds" in peer else "skipped",
                 f"{peer['rate']:,.0f} msg/s, {peer['peak_rss_mb']} MB RSS"
                 if "seconds" in peer else peer.get("skipped", "")))
    b = r.get("backfill")
    if b:
        target = "target <= 2x floor" + (", < peer" if "x_peer" in b else "")
        rows += [
            ("backfill wall time", f"{b['seconds']:.2f} s",
             f"{b['x_floor']}x floor" + (f", {b['x_peer']}x peer" if "x_peer" in b else "")
             + f" ({target})"),
            ("backfill rate", f"{b['rate']:,.0f} msg/s", ""),
            ("backfill bytes read", f"{_mb(b['bytes_read']):,} MB",
             f"{b['bytes_pct']}% of mailbox (target <= 5%), "
             f"{b['bytes_read'] // mb['messages']:,} B/msg; "
             f"header fields alone {fl['header_pct']}%, "
             f"{fl['header_bytes'] // max(fl['messages'], 1):,} B/msg"),
            ("backfill peak RSS", f"{b['peak_rss_mb']} MB", "target <= 200 MB (at 100k)"),
        ]
        c = r["correctness"]["backfill"]
        rows.append(("touchpoints stored", f"{c['stored_touchpoints']:,}",
                     "match" if c["ok"] else
                     f"MISMATCH: expected {c['expected_touchpoints']:,} "
                     f"(missing {c['missing']}, unexpected {c['unexpected']})"))
        rows.append(("customers stored", f"{c['stored_customers']:,}",
                     f"expected {c['expected_customers']:,}"))
    n = r.get("noop")
    if n:
        rows.append(("no-op sync (run --once)", f"{n['seconds']:.2f} s",
                     f"{n['bytes_read']:,} bytes read (target < 1 s)"))
    lv = r.get("live")
    if lv:
        rows += [
            ("live: delivery -> touchpoint", f"p50 {lv['latency_p50']:.3f} s",
             f"p95 {lv['latency_p95']:.3f} s, max {lv['latency_max']} s; "
             f"{lv['stored']}/{lv['delivered']} stored"),
            ("live: bare IDLE notification", f"p50 {lv['idle_p50']:.3f} s",
             f"p95 {lv['idle_p95']:.3f} s (target: live p95 <= this + 0.5 s)"),
            ("daemon exit after SIGTERM", f"{lv['sigterm_exit_seconds']:.2f} s",
             f"exit code {lv['daemon_exit_code']}; daemon peak RSS {lv['daemon_peak_rss_mb']} MB"),
        ]
        c = r["correctness"].get("after_live")
        if c:
            rows.append(("touchpoints after live", f"{c['stored_touchpoints']:,}",
                         "match" if c["ok"] else f"MISMATCH: expected "
                         f"{c['expected_touchpoints']:,}"))
    s = r.get("startup")
    if s:
        rows += [
            ("start-up: open database", f"{s['open_seconds']:.3f} s",
             f"{s['touchpoints']:,} touchpoints (+{s['import_seconds']:.2f} s import); "
             "target < 1 s at 100k"),
            ("database file", f"{_mb(s['db_bytes']):,} MB", "snapshot + journal"),
        ]
    sc = r.get("scale")
    if sc:
        st, sl = sc["startup"], sc["shortlist"]
        rows += [
            ("start-up at scale", f"{st['open_seconds']:.3f} s",
             f"{st['touchpoints']:,} synthetic touchpoints, {_mb(st['db_bytes']):,} MB, "
             f"{st['peak_rss_mb']} MB RSS (target < 1 s)"),
            ("short list", f"{sl['compose_seconds']:.3f} s",
             f"{sl['customers']:,} customers, {sl['touchpoints']:,} touchpoints, rank + "
             f"{sl['picks']} drafts, store open (target < 0.5 s)"),
            ("short list, first after start-up", f"{sl['first_seconds']:.3f} s",
             f"decodes all {sl['touchpoints']:,} touchpoints once"),
        ]
    w1 = max(len(a) for a, _b, _c in rows)
    w2 = max(len(b) for _a, b, _c in rows)
    lines = [f"{'measure'.ljust(w1)}  {'value'.ljust(w2)}  note", "-" * (w1 + w2 + 40)]
    lines += [f"{a.ljust(w1)}  {b.ljust(w2)}  {c}".rstrip() for a, b, c in rows]
    return "\n".join(lines)


def markdown_table(r: dict[str, Any]) -> str:
    out = ["| measure | value | note |", "|---|---|---|"]
    for line in table(r).splitlines()[2:]:
        parts = re.split(r"\s{2,}", line, maxsplit=2)
        parts += [""] * (3 - len(parts))
        out.append("| " + " | ".join(p.replace("|", "/") for p in parts) + " |")
    return "\n".join(out)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=20_000, help="mailbox size (default 20000)")
    p.add_argument("--json", type=Path, default=None,
                   help="where to write the results (default bench/out/bench-N.json)")
    p.add_argument("--skip-peer", action="store_true", help="do not run mbsync")
    p.add_argument("--live", type=int, default=20, help="live messages (default 20; 0: none)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--profile", action="store_true",
                   help="also profile a second backfill with py-spy (bench/out/profile-N.txt)")
    p.add_argument("--scale", type=int, default=100_000, metavar="N",
                   help="synthetic store: start-up at N touchpoints, the short list at 2N "
                        "(10,000 customers); 0 skips it (default 100000)")
    p.add_argument("--keep", action="store_true", help="keep the stack and work directories")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="print the table (plain and Markdown) of an earlier run; run nothing")
    args = p.parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        print(table(saved))
        print()
        print(markdown_table(saved))
        return 0
    if args.messages < 10 or args.live < 0:
        p.error("--messages must be at least 10 and --live at least 0")
    opts = Options(messages=args.messages, live=args.live, skip_peer=args.skip_peer,
                   seed=args.seed, profile=args.profile, scale_touchpoints=args.scale)
    json_path = args.json or OUT_DIR / f"bench-{args.messages}.json"
    workdir = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    ok = False
    with _sigterm_as_interrupt():
        stack = MailStack.start()
        try:
            print(f"stack in {stack.directory} (IMAP {stack.imap_port}, SMTP {stack.smtp_port}); "
                  f"work in {workdir}", flush=True)
            result = run_bench(stack, opts, workdir,
                               say=lambda s: print(s, flush=True))
            ok = True
        finally:
            stack.stop(remove=not args.keep)
            if args.keep or not ok:
                print(f"kept {workdir}" + (f" and {stack.directory}" if args.keep else ""))
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    result["rusage_self_maxrss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(result))
    print(f"\nJSON: {json_path}")
    bad = [k for k, v in result.get("correctness", {}).items() if not v["ok"]]
    if bad:
        print(f"CORRECTNESS MISMATCH in {', '.join(bad)}: see 'correctness' in the JSON")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
