"""``mailbot init``: provider recognition, and the wizard through flags and a pseudo-terminal."""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from mailbot import oauth
from mailbot.cli import build_parser
from mailbot.config import KEYRING_SERVICE, load_settings
from mailbot.errors import InputError
from mailbot.providers import lookup_mx, recognise
from mailbot.setup_wizard import dump_toml, run_init

from . import helpers
from .fakekeyring import FileKeyring, MemoryKeyring
from .helpers import ROOT, env
from .mailstack import MailStack
from .test_oauth_stack import oauth_config

# Subprocesses never touch the developer's own keyring: no keyring at all, unless a test
# hands them the file-backed fake.
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def _env(**extra: str) -> dict[str, str]:
    return {**env(), **NO_KEYRING, **extra}


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return helpers.cli(config, *args, extra_env=NO_KEYRING)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def _scripted(*pairs: tuple[str, str]) -> Callable[[str], str]:
    """An input function that checks each prompt and gives the scripted answer."""
    left = list(pairs)

    def answer(prompt: str) -> str:
        assert left, f"unexpected question {prompt!r}"
        expected, reply = left.pop(0)
        assert expected in prompt, f"expected {expected!r}, asked {prompt!r}"
        return reply

    return answer

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
    assert (gmail.logins, gmail.oauth2_provider, gmail.oauth2_only) == (
        ("password", "oauth2"), "google", False)
    m365 = recognise("a@x.example", ["x.mail.protection.outlook.com"])
    assert m365.files_sent_itself and m365.oauth2_only and "OAuth2" in m365.help
    assert (m365.logins, m365.oauth2_provider, m365.smtp_host) == (
        ("oauth2",), "microsoft", "smtp.office365.com")
    assert "mailbot auth" in m365.help and "docs/oauth2.md" in m365.help
    assert "not do OAuth2" not in m365.help
    icloud = recognise("a@icloud.com", [])
    assert (icloud.logins, icloud.oauth2_provider) == (("password",), None)
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


def test_init_for_microsoft_writes_oauth2_and_points_to_mailbot_auth(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    config = tmp_path / "config.toml"
    flags = ["--yes", "--address", "olivia@linen.example", "--timezone", "UTC",
             "--data-dir", str(tmp_path / "data")]
    m365 = ["linen-example.mail.protection.outlook.com"]
    with pytest.raises(InputError, match="give --oauth-client-id"):
        run_init(_args(config, *flags), resolver=lambda d: m365, out=io.StringIO())
    assert not config.exists()

    out = io.StringIO()
    args = _args(config, *flags, "--oauth-client-id", "0000-client", "--oauth-tenant",
                 "linen.example")
    assert run_init(args, resolver=lambda d: m365, out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "Microsoft 365 accepts only OAuth2" in text and "docs/oauth2.md" in text
    assert "next: mailbot auth to sign in as olivia@linen.example" in text
    assert "--loopback" not in text
    assert "testing the setup" not in text  # no password login is tried on this account
    written = tomllib.loads(config.read_text())
    assert written["oauth2"] == {"provider": "microsoft", "client_id": "0000-client",
                                 "tenant": "linen.example"}
    assert not any(k.startswith("password") for k in {**written["imap"], **written["smtp"]})
    s = load_settings(config)
    assert (s.imap.auth, s.smtp.auth) == ("oauth2", "oauth2")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("smtp.office365.com", 587,
                                                            "starttls")
    assert s.oauth2 is not None and s.imap.oauth2 == s.oauth2
    assert (s.oauth2.provider, s.oauth2.client_id, s.oauth2.tenant) == (
        "microsoft", "0000-client", "linen.example")
    assert s.oauth2.device_url.startswith("https://login.microsoftonline.com/linen.example/")
    assert not s.imap.password.is_set


def test_google_offers_oauth2_interactively_and_keeps_the_client_secret_in_the_keyring(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    config = tmp_path / "config.toml"
    answers = _scripted(
        ("Your email address", "olivia@gmail.com"), ("Your name [Olivia]", ""),
        ("Your time zone", "Europe/Berlin"), ("IMAP server [imap.gmail.com]", ""),
        ("IMAP security (tls, starttls, none) [tls]", ""), ("IMAP port [993]", ""),
        ("SMTP server [smtp.gmail.com]", ""), ("SMTP security (tls, starttls, none) [tls]", ""),
        ("SMTP port [465]", ""), ("CA certificate file", ""),
        ("Data directory", str(tmp_path / "data")), ("Sign in with [password]", "oauth2"),
        ("Client ID of your app", "123-abc.apps.googleusercontent.com"),
    )
    secrets = _scripted(("Client secret (not shown)", "GOCSPX-secret"))
    out = io.StringIO()
    status = run_init(_args(config, "--no-check"), input_fn=answers, getpass_fn=secrets,
                      out=out)
    assert status == 0, out.getvalue()
    text = out.getvalue()
    assert "app password" in text and "'1a. Google Cloud Console'" in text
    assert "next: mailbot auth --loopback" in text
    assert "GOCSPX-secret" not in text + config.read_text()
    assert memory_keyring.entries == {
        (KEYRING_SERVICE, "oauth2-client-secret:123-abc.apps.googleusercontent.com"):
            "GOCSPX-secret"}
    s = load_settings(config)
    assert s.oauth2 is not None and s.oauth2.provider == "google"
    assert s.oauth2.client_secret.reveal() == "GOCSPX-secret"
    assert (s.imap.auth, s.smtp.auth, s.imap.sent) == ("oauth2", "oauth2", "[Gmail]/Sent Mail")

    # by flags, the other way round: back to an app password, --oauth-* flags refused
    with pytest.raises(InputError, match="--oauth-\\* flags are for --auth oauth2"):
        run_init(_args(config, "--yes", "--auth", "password", "--oauth-tenant", "x"),
                 out=io.StringIO())


def test_a_password_goes_to_the_keyring_and_follows_the_server(
    tmp_path: Path, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    out = io.StringIO()
    flags = ["--yes", "--no-check", "--timezone", "UTC"]
    args = _args(config, *flags, "--address", "olivia@linen.example", "--password", "pw-1")
    assert run_init(args, out=out) == 0
    assert "stored the password in the system keyring (tests.fakekeyring.MemoryKeyring)" \
        in out.getvalue()
    assert "pw-1" not in config.read_text() + out.getvalue()
    assert memory_keyring.entries == {
        (KEYRING_SERVICE, "olivia@linen.example@imap.linen.example"): "pw-1",
        (KEYRING_SERVICE, "olivia@linen.example@smtp.linen.example"): "pw-1",
    }
    s = load_settings(config)
    assert s.imap.password.reveal() == s.smtp.password.reveal() == "pw-1"
    assert "keyring" in s.imap.password.source

    # a new server: the entry (named after it) follows, with no password given again
    assert run_init(_args(config, *flags, "--imap-host", "mail.linen.example"),
                    out=io.StringIO()) == 0
    assert memory_keyring.entries[(KEYRING_SERVICE, "olivia@linen.example@mail.linen.example")
                                  ] == "pw-1"
    assert load_settings(config).imap.password.reveal() == "pw-1"

    # --store file moves it into the file, with the warning
    assert run_init(_args(config, *flags, "--store", "file"), out=io.StringIO()) == 0
    assert "password is stored in plain text" in capsys.readouterr().err
    written = tomllib.loads(config.read_text())
    assert written["imap"]["password"] == written["smtp"]["password"] == "pw-1"
    assert "password_keyring" not in written["imap"]

    # ... and --store keyring back; the backup still has it in plain text, and says so
    memory_keyring.entries.clear()
    out = io.StringIO()
    assert run_init(_args(config, *flags, "--store", "keyring"), out=out) == 0
    assert "config.toml.bak still holds a secret in plain text" in out.getvalue()
    assert "pw-1" not in config.read_text()
    assert len(memory_keyring.entries) == 2
    assert load_settings(config).smtp.password.reveal() == "pw-1"


def test_without_a_keyring_the_password_is_in_the_file_with_a_warning(
    tmp_path: Path, no_keyring: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    flags = ["--yes", "--no-check", "--address", "olivia@linen.example", "--timezone", "UTC",
             "--password", "pw-2"]
    with pytest.raises(InputError, match="cannot keep the password in the system keyring: "
                       "no keyring backend is available"):
        run_init(_args(config, *flags, "--store", "keyring"), out=io.StringIO())
    assert not config.exists()
    assert run_init(_args(config, *flags), out=io.StringIO()) == 0
    err = capsys.readouterr().err
    assert "plain text" in err and "no keyring backend is available" in err
    assert load_settings(config).smtp.password.reveal() == "pw-2"
    assert "password_keyring" not in config.read_text()


_HAND_WRITTEN = """\
# My mailbot settings -- Olivia, March
[owner]
name = "Olivia"
addresses = ["olivia@linen.example", "shop@linen.example"]  # shop too
timezone = "Europe/Berlin"   # where I live

[imap]
# the shop's server
host = "imap.linen.example"
port = 993
security = "tls"
username = "olivia@linen.example"
password_env = "LINEN_PW"   # set in ~/.profile
inbox = "INBOX"             # the default

# picks, see config.example.toml
[digest]
time = "06:45"   # early riser
size = 3

[smtp]
host = "smtp.linen.example"
security = "tls"
password_env = "LINEN_PW"

[data]
dir = "data"
"""


def test_rerun_edits_in_place_keeping_comments_order_and_other_keys(
    tmp_path: Path, no_keyring: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(_HAND_WRITTEN)
    out = io.StringIO()
    args = _args(config, "--yes", "--no-check", "--timezone", "America/New_York",
                 "--password-command", "pass show linen")
    assert run_init(args, out=out) == 0, out.getvalue()
    assert "your comments are only in the backup" not in out.getvalue()
    # only the changed lines differ; new keys sit in config order, with the usual comment
    assert config.read_text() == """\
# My mailbot settings -- Olivia, March
[owner]
name = "Olivia"
addresses = ["olivia@linen.example", "shop@linen.example"]  # shop too
timezone = "America/New_York" # where I live

[imap]
# the shop's server
host = "imap.linen.example"
port = 993
security = "tls"
username = "olivia@linen.example"
password_command = "pass show linen"       # run (no shell) when needed; its first line is the password
ca_file = ""                               # extra CA bundle, for self-signed servers; "" = system CAs
inbox = "INBOX"             # the default
sent = ""                                  # "" = find it (SPECIAL-USE \\Sent, then the usual names)

# picks, see config.example.toml
[digest]
time = "06:45"   # early riser
size = 3

[smtp]
host = "smtp.linen.example"
port = 465
security = "tls"
username = "olivia@linen.example"
password_command = "pass show linen"
ca_file = ""                               # extra CA bundle, for self-signed servers; "" = system CAs

[data]
dir = "data"
"""  # noqa: E501
    assert (tmp_path / "config.toml.bak").read_text() == _HAND_WRITTEN
    s = load_settings(config)
    assert s.owner.addresses == ("olivia@linen.example", "shop@linen.example")
    assert (s.digest.time, s.digest.size, s.imap.password.source) == (
        "06:45", 3, "from command 'pass'")

def test_a_layout_tomlkit_cannot_edit_is_written_afresh_and_kept_in_the_backup(
    tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    hand = ('# dotted keys\nowner = {name = "O", addresses = ["o@linen.example"], '
            'timezone = "UTC"}\nimap.host = "imap.linen.example"\nimap.password_env = "X"\n')
    config.write_text(hand)
    out = io.StringIO()
    args = _args(config, "--yes", "--no-check", "--password-env", "PW")
    assert run_init(args, out=out) == 0, out.getvalue()
    assert "written afresh: your comments are only in the backup" in out.getvalue()
    assert config.read_text().startswith("# mailbot configuration, written by `mailbot init`.")
    assert (tmp_path / "config.toml.bak").read_text() == hand
    assert load_settings(config, env={"PW": "x"}).imap.host == "imap.linen.example"


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


def test_oauth2_account_is_checked_only_once_signed_in(
    tmp_path: Path, stack: MailStack, owner: str, memory_keyring: MemoryKeyring
) -> None:
    client_id = stack.oauth_client(owner)
    config = oauth_config(tmp_path, stack, owner, client_id)  # provider = "custom"
    hand = config.read_text()
    args = _args(config, "--yes", "--timezone", "UTC")
    out = io.StringIO()
    assert run_init(args, out=out) == 0, out.getvalue()
    assert f"next: mailbot auth to sign in as {owner}" in out.getvalue()
    assert "testing the setup" not in out.getvalue()
    written = config.read_text()
    assert written.split("[oauth2]")[1] == hand.split("[oauth2]")[1]  # the custom app stays
    assert 'timezone = "UTC"' in written

    settings = load_settings(config)
    source = oauth.token_source(settings.imap)
    memory_keyring.set_password(KEYRING_SERVICE, source.key, stack.oauth_grant(client_id))
    out = io.StringIO()
    assert run_init(args, out=out) == 0, out.getvalue()
    assert "ok    OAuth2 token" in out.getvalue() and "all checks passed" in out.getvalue()
    assert f"{config}: nothing changed" in out.getvalue()


# --------------------------------------------------------------------------- pseudo-terminal

_PTY_CHILD = (
    "import fcntl, os, sys, termios\n"
    "os.setsid()\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "from mailbot.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class _Pty:
    def __init__(self, argv: list[str], child_env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PTY_CHILD, *argv],
            stdin=slave, stdout=slave, stderr=slave, env=child_env, cwd=str(ROOT),
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
def test_interactive_wizard_through_a_pseudo_terminal_keeps_the_password_in_the_keyring(
    tmp_path: Path, mail_stack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = mail_stack.add_user(f"init-{os.getpid()}-pty")
    config = tmp_path / "config.toml"
    ring = tmp_path / "keyring.json"
    term = _Pty(["--config", str(config), "init"], _env(
        PYTHON_KEYRING_BACKEND="tests.fakekeyring.FileKeyring", MAILBOT_TEST_KEYRING=str(ring)))
    try:
        answers: list[tuple[str, str | None]] = [
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
            ("keyring  the system keyring (tests.fakekeyring.FileKeyring)", None),
            ("Password source [keyring]", ""),
            ("Password (not shown)", mail_stack.password),
        ]
        for prompt, answer in answers:
            term.expect(prompt)
            if answer is not None:
                term.send(answer)
        code, rest = term.finish()
    finally:
        term.close()
    assert code == 0, rest
    assert "all checks passed" in rest  # logged in to IMAP and SMTP with it
    assert mail_stack.password not in rest  # getpass did not echo it
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert mail_stack.password not in config.read_text()
    assert json.loads(ring.read_text()) == {
        f"mailbot/{address}@127.0.0.1": mail_stack.password}  # IMAP and SMTP: one host
    monkeypatch.setenv("MAILBOT_TEST_KEYRING", str(ring))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    try:
        s = load_settings(config)
        assert s.imap.password.reveal() == s.smtp.password.reveal() == mail_stack.password
    finally:
        keyring.set_keyring(previous)
    assert s.owner.addresses == (address,) and s.owner.timezone == "Europe/Berlin"
    assert (s.imap.port, s.imap.security) == (mail_stack.imap_port, "none")
    assert s.data.dir == tmp_path / "data"
