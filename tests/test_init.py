"""``mailbot init``: provider recognition, and the wizard through flags and a pseudo-terminal."""

from __future__ import annotations

import argparse
import io
import os
import select
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from mailbot.cli import build_parser
from mailbot.config import load_settings
from mailbot.providers import lookup_mx, recognise
from mailbot.setup_wizard import dump_toml, run_init

from .helpers import ROOT, cli, env
from .mailstack import MailStack

# --------------------------------------------------------------------------- providers


@pytest.mark.parametrize(
    ("address", "mx", "name", "imap_host", "login"),
    [
        ("ana@gmail.com", [], "Gmail", "imap.gmail.com", "app-password"),
        ("ana@googlemail.com", [], "Gmail", "imap.gmail.com", "app-password"),
        ("ana@outlook.com", [], "Outlook.com", "outlook.office365.com", "oauth2-only"),
        ("ana@hotmail.co.uk", [], "Outlook.com", "outlook.office365.com", "oauth2-only"),
        ("ana@live.com", [], "Outlook.com", "outlook.office365.com", "oauth2-only"),
        ("ana@icloud.com", [], "iCloud", "imap.mail.me.com", "app-password"),
        ("ana@me.com", [], "iCloud", "imap.mail.me.com", "app-password"),
        ("ana@mac.com", [], "iCloud", "imap.mail.me.com", "app-password"),
        ("ana@yahoo.co.jp", [], "Yahoo", "imap.mail.yahoo.com", "app-password"),
        ("ana@yahoo.com", [], "Yahoo", "imap.mail.yahoo.com", "app-password"),
        ("ana@fastmail.com", [], "Fastmail", "imap.fastmail.com", "app-password"),
        ("ana@fastmail.fm", [], "Fastmail", "imap.fastmail.com", "app-password"),
        ("ana@zoho.eu", [], "Zoho Mail", "imap.zoho.eu", "app-password"),
        ("Ana@GMAIL.COM.", [], "Gmail", "imap.gmail.com", "app-password"),
        # custom domains, by MX
        ("o@linen.example", ["aspmx.l.google.com.", "alt1.aspmx.l.google.com"],
         "Google Workspace", "imap.gmail.com", "app-password"),
        ("o@linen.example", ["ASPMX.GOOGLEMAIL.COM"], "Google Workspace", "imap.gmail.com",
         "app-password"),
        ("o@linen.example", ["linen-example.mail.protection.outlook.com"], "Microsoft 365",
         "outlook.office365.com", "oauth2-only"),
        ("o@linen.example", ["in1-smtp.messagingengine.com"], "Fastmail", "imap.fastmail.com",
         "app-password"),
        ("o@linen.example", ["mx01.mail.icloud.com"], "iCloud", "imap.mail.me.com",
         "app-password"),
        ("o@linen.example", ["mta5.am0.yahoodns.net"], "Yahoo", "imap.mail.yahoo.com",
         "app-password"),
        ("o@linen.example", ["mx.zoho.com"], "Zoho Mail", "imappro.zoho.com", "app-password"),
        ("o@linen.example", ["mx.linen.example"], "your mail provider", "imap.linen.example",
         "password"),
        ("o@linen.example", [], "your mail provider", "imap.linen.example", "password"),
        # a look-alike is not the provider
        ("o@linen.example", ["google.com.evil.example"], "your mail provider",
         "imap.linen.example", "password"),
    ],
)
def test_recognise_by_domain_and_mx(
    address: str, mx: list[str], name: str, imap_host: str, login: str
) -> None:
    p = recognise(address, mx)
    assert (p.name, p.imap_host, p.login) == (name, imap_host, login)
    assert p.help


def test_provider_facts() -> None:
    gmail = recognise("a@gmail.com", [])
    assert gmail.sent_folder == "[Gmail]/Sent Mail" and gmail.files_sent_itself
    assert recognise("a@icloud.com", []).sent_folder == "Sent Messages"
    m365 = recognise("a@x.example", ["x.mail.protection.outlook.com"])
    assert m365.files_sent_itself and m365.oauth2_only and "OAuth2" in m365.help
    generic = recognise("a@shop.example", [])
    assert (generic.imap_port, generic.imap_security) == (993, "tls")
    assert (generic.smtp_host, generic.smtp_port, generic.smtp_security) == (
        "smtp.shop.example", 587, "starttls")


def test_lookup_mx_uses_the_injected_resolver_and_never_raises() -> None:
    assert lookup_mx("linen.example", lambda d: ["MX1.Example.", ""]) == ["mx1.example"]

    def broken(domain: str) -> list[str]:
        raise OSError("no network")

    assert lookup_mx("linen.example", broken) == []


def _args(config: Path, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["--config", str(config), "init", *flags])


def test_init_with_injected_mx_writes_the_provider_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    out = io.StringIO()
    args = _args(config, "--yes", "--no-check", "--address", "olivia@linen.example",
                 "--timezone", "Europe/Berlin", "--password-env", "LINEN_PW")
    status = run_init(args, resolver=lambda d: ["aspmx.l.google.com"], out=out)
    assert status == 0, out.getvalue()
    text = out.getvalue()
    assert "Google Workspace" in text and "app password" in text
    s = load_settings(config, env={"LINEN_PW": "x"})
    assert (s.imap.host, s.imap.port, s.imap.security) == ("imap.gmail.com", 993, "tls")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("smtp.gmail.com", 465, "tls")
    assert s.imap.sent == "[Gmail]/Sent Mail"
    assert s.imap.password.reveal() == "x" and s.smtp.password.reveal() == "x"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_init_for_microsoft_says_oauth2_is_missing_and_still_writes(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    out = io.StringIO()
    args = _args(config, "--yes", "--no-check", "--address", "olivia@outlook.com",
                 "--timezone", "UTC", "--password-command", "pass show mail")
    assert run_init(args, out=out) == 0
    assert "OAuth2" in out.getvalue() and "does not do OAuth2 yet" in out.getvalue()
    s = load_settings(config)
    assert s.imap.host == "outlook.office365.com"


def test_dump_toml_round_trips_the_types_used() -> None:
    doc = {
        "owner": {"name": 'O "Q" \\ ü', "addresses": ["a@b.example"], "signature": "a\nb\x7f"},
        "rank": {"lapse_factor": 2.5, "max_per_reason": 2},
        "digest": {"send_when_empty": True},
        "x": {"y": {"z": 1}},
    }
    assert tomllib.loads(dump_toml(doc)) == doc


# --------------------------------------------------------------------------- on the stack


def _stack_flags(stack: MailStack, address: str) -> list[str]:
    return [
        "--address", address, "--name", "Olivia Owner", "--timezone", "Europe/Berlin",
        "--imap-host", "127.0.0.1", "--imap-port", str(stack.imap_port),
        "--imap-security", "none",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(stack.smtp_port),
        "--smtp-security", "starttls", "--ca-file", stack.cafile,
        "--data-dir", "data",
    ]


@pytest.mark.stack
def test_init_by_flags_writes_a_0600_config_whose_checks_pass(
    tmp_path: Path, mail_stack: MailStack
) -> None:
    address = mail_stack.add_user(f"init-{os.getpid()}-flags")
    config = tmp_path / "config.toml"
    e = env()
    e["INIT_TEST_PW"] = mail_stack.password
    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "init", "--yes",
         *_stack_flags(mail_stack, address), "--password-env", "INIT_TEST_PW"],
        capture_output=True, text=True, timeout=60, env=e, cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    assert "FAIL" not in done.stdout
    assert mail_stack.password not in done.stdout + done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    s = load_settings(config, env={"INIT_TEST_PW": "pw"})
    assert s.owner.addresses == (address,) and s.owner.name == "Olivia Owner"
    assert (s.imap.port, s.imap.security, s.smtp.security) == (
        mail_stack.imap_port, "none", "starttls")
    assert s.data.dir == tmp_path / "data"
    assert not (tmp_path / "config.toml.bak").exists()


@pytest.mark.stack
def test_rerun_changes_only_that_value_and_keeps_the_owners_keys(
    tmp_path: Path, mail_stack: MailStack
) -> None:
    address = mail_stack.add_user(f"init-{os.getpid()}-rerun")
    config = tmp_path / "config.toml"
    first = cli(config, "init", "--yes", "--no-check", *_stack_flags(mail_stack, address),
                "--password", mail_stack.password)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "plain text" in first.stderr
    before = tomllib.loads(config.read_text())
    # the owner adds settings of their own
    config.write_text(config.read_text() + '\n[digest]\ntime = "06:45"\nsize = 3\n'
                      '\n[rank]\nlapse_factor = 2.5\n')
    config.chmod(0o644)
    edited = tomllib.loads(config.read_text())

    again = cli(config, "init", "--yes", "--timezone", "America/New_York")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "all checks passed" in again.stdout
    after = tomllib.loads(config.read_text())
    expected = dict(edited)
    expected["owner"] = dict(edited["owner"], timezone="America/New_York")
    assert after == expected
    assert after["imap"] == before["imap"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    backup = tmp_path / "config.toml.bak"
    assert tomllib.loads(backup.read_text()) == edited
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    s = load_settings(config)
    assert (s.digest.time, s.digest.size, s.rank.lapse_factor) == ("06:45", 3, 2.5)

    same = cli(config, "init", "--yes", "--no-check")
    assert same.returncode == 0 and "nothing changed" in same.stdout


@pytest.mark.stack
def test_a_failing_check_exits_non_zero_and_the_file_is_still_written(
    tmp_path: Path, mail_stack: MailStack
) -> None:
    address = mail_stack.add_user(f"init-{os.getpid()}-bad")
    config = tmp_path / "config.toml"
    done = cli(config, "init", "--yes", *_stack_flags(mail_stack, address),
               "--password", "wrong-password")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  IMAP login" in done.stdout and "written all the same" in done.stdout
    assert load_settings(config).imap.host == "127.0.0.1"


# --------------------------------------------------------------------------- pseudo-terminal

_PTY_CHILD = (
    "import fcntl, os, sys, termios\n"
    "os.setsid()\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "from mailbot.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class _Pty:
    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PTY_CHILD, *argv],
            stdin=slave, stdout=slave, stderr=slave, env=env(), cwd=str(ROOT),
            close_fds=True,
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"waited {timeout} s for {text!r}; got:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the wizard ended before {text!r}:\n{self.seen}")
                self.seen += chunk.decode("utf-8", "replace")
        self.seen = self.seen[self.seen.index(text) + len(text):]

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Read to the end; the exit status and what was printed after the last prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                self.seen += chunk.decode("utf-8", "replace")
            elif self.proc.poll() is not None:
                break
        try:
            code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the wizard did not end within {timeout} s:\n{self.seen}"
            ) from None
        return code, self.seen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        os.close(self.master)


@pytest.mark.stack
def test_interactive_wizard_through_a_pseudo_terminal(
    tmp_path: Path, mail_stack: MailStack
) -> None:
    address = mail_stack.add_user(f"init-{os.getpid()}-pty")
    config = tmp_path / "config.toml"
    term = _Pty(["--config", str(config), "init"])
    try:
        answers = [
            ("Your email address", address),
            ("Your name [", "Olivia Owner"),
            ("Your time zone [", "Europe/Berlin"),
            ("IMAP server [imap.example.test]", "127.0.0.1"),
            ("IMAP security (tls, starttls, none) [tls]", "none"),
            ("IMAP port [143]", str(mail_stack.imap_port)),
            ("SMTP server [smtp.example.test]", "127.0.0.1"),
            ("SMTP security (tls, starttls, none) [starttls]", ""),
            ("SMTP port [587]", str(mail_stack.smtp_port)),
            ("CA certificate file", mail_stack.cafile),
            ("Data directory [~/.local/share/mailbot]", str(tmp_path / "data")),
            ("Choice [1]", "3"),
            ("Password (not shown)", mail_stack.password),
        ]
        for prompt, answer in answers:
            term.expect(prompt)
            term.send(answer)
        code, rest = term.finish()
    finally:
        term.close()
    assert code == 0, rest
    assert "all checks passed" in rest
    assert mail_stack.password not in rest  # getpass did not echo it
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    s = load_settings(config)
    assert s.owner.addresses == (address,) and s.owner.timezone == "Europe/Berlin"
    assert (s.imap.port, s.imap.security) == (mail_stack.imap_port, "none")
    assert s.imap.password.reveal() == mail_stack.password
    assert s.data.dir == tmp_path / "data"
