"""Helpers for tests that run mailbot against the private mail stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The smallest config that loads: loopback servers, data in ./data beside the file.
# For tests that need no mail server (import, digest job, status).
MINIMAL_CONFIG = """
[owner]
name = "Olivia Owner"
addresses = ["olivia@linen.example"]
timezone = "Europe/Berlin"

[imap]
host = "127.0.0.1"
security = "none"

[smtp]
host = "127.0.0.1"
security = "none"

[data]
dir = "data"
"""


def write_config(
    directory: Path,
    stack: Any,
    owner: str,
    *,
    password: str | None = None,
    security: str = "none",
    port: int | None = None,
    ca_file: str | None = None,
    history_days: int = 730,
    batch_size: int = 500,
    extra: str = "",
) -> Path:
    """A config.toml for ``owner`` on the private stack; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    imap_port = port or (stack.imaps_port if security == "tls" else stack.imap_port)
    smtp_port = stack.smtps_port if security == "tls" else stack.smtp_port
    ca = stack.cafile if ca_file is None else ca_file
    smtp_ca = stack.cafile  # SMTP always verifies (STARTTLS on the plain port)
    pw = stack.password if password is None else password
    text = f"""
[owner]
name = "Olivia Owner"
addresses = ["{owner}"]
internal_domains = ["staff.example"]
timezone = "Europe/Berlin"
signature = "Olivia"

[imap]
host = "127.0.0.1"
port = {imap_port}
security = "{security}"
username = "{owner}"
password = "{pw}"
ca_file = "{ca}"
timeout_seconds = 10

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "{'tls' if security == 'tls' else 'starttls'}"
username = "{owner}"
password = "{pw}"
ca_file = "{smtp_ca}"

[data]
dir = "{directory / 'data'}"

[ingest]
history_days = {history_days}
batch_size = {batch_size}
{extra}
"""
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("MAILBOT_CONFIG", None)
    e["PYTHONPATH"] = str(ROOT)
    return e


def cli(config: Path, *args: str, timeout: float = 120,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout, env={**env(), **(extra_env or {})},
        cwd=str(ROOT),
    )


def start_daemon(config: Path, *extra: str) -> subprocess.Popen[str]:
    with open(config.parent / "daemon.log", "a") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), *extra, "run"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env(), cwd=str(ROOT),
        )


def stop_daemon(proc: subprocess.Popen[str], timeout: float = 10) -> float:
    """SIGTERM and wait; returns how long the daemon took to exit."""
    started = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise AssertionError(f"daemon ignored SIGTERM for {timeout} s") from None
    return time.monotonic() - started


def customers(config: Path) -> dict[str, dict[str, Any]]:
    """``mailbot customers --json`` keyed by address ({} before the first commit)."""
    r = cli(config, "customers", "--json", timeout=60)
    if r.returncode != 0:
        if "no database" in r.stderr:
            return {}
        raise AssertionError(f"customers failed: {r.stderr}")
    return {row["address"]: row for row in json.loads(r.stdout)}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def daemon_log(config: Path) -> str:
    p = config.parent / "daemon.log"
    return p.read_text() if p.exists() else ""
