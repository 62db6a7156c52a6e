"""OAuth2 (XOAUTH2) against the private stack: Dovecot's oauth2 passdb and the SMTP server
both check tokens at the stack's OAuth2 server (tests/mailstack/oauthd.py) by RFC 7662
introspection.  Nothing is mocked: real tokens, real refreshes, real logins.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import subprocess
import sys
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot import oauth
from mailbot.config import KEYRING_SERVICE, Settings, load_settings
from mailbot.errors import AuthError
from mailbot.imap import ImapSession
from mailbot.smtp import Outcome, check_login, send_raw

from .fakekeyring import MemoryKeyring
from .helpers import ROOT, cli, env
from .mailstack import MailStack


def oauth_config(directory: Path, stack: MailStack, owner: str, client_id: str,
                 *, token_store: str = "auto") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(f"""
[owner]
name = "Olivia Owner"
addresses = ["{owner}"]
timezone = "Europe/Berlin"

[imap]
host = "127.0.0.1"
port = {stack.imap_port}
security = "none"
username = "{owner}"
auth = "oauth2"
timeout_seconds = 10

[smtp]
host = "127.0.0.1"
port = {stack.smtp_port}
security = "starttls"
username = "{owner}"
auth = "oauth2"
ca_file = "{stack.cafile}"
timeout_seconds = 10

[data]
dir = "{directory / 'data'}"

[oauth2]
provider = "custom"
client_id = "{client_id}"
token_url = "{stack.oauth_url}/token"
device_url = "{stack.oauth_url}/device"
auth_url = "{stack.oauth_url}/authorize"
scopes = ["mail"]
token_store = "{token_store}"
timeout_seconds = 5
""", encoding="utf-8")
    return path


def signed_in(tmp_path: Path, stack: MailStack, owner: str, kr: MemoryKeyring,
              **client: object) -> tuple[Settings, str]:
    """Settings for OWNER with a new client whose refresh token is in the keyring."""
    client_id = stack.oauth_client(owner, **client)
    settings = load_settings(oauth_config(tmp_path, stack, owner, client_id))
    source = oauth.token_source(settings.imap)
    kr.set_password(KEYRING_SERVICE, source.key, stack.oauth_grant(client_id))
    return settings, client_id


def imap_login(settings: Settings) -> int:
    session = ImapSession(settings.imap)
    session.connect()
    try:
        return session.select("INBOX").exists
    finally:
        session.close()


def smtp_login(settings: Settings) -> str:
    return asyncio.run(check_login(settings.smtp))


def no_token_in(text: str, stack: MailStack, client_id: str) -> None:
    issued = stack.oauth_stats(client_id)["issued"]
    assert issued
    for token in issued:
        assert token not in text


def test_fresh_token_logs_in_to_imap_and_smtp(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, client_id = signed_in(tmp_path, stack, owner, memory_keyring)
    assert imap_login(settings) == 0
    assert "logged in to 127.0.0.1" in smtp_login(settings)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = owner, owner, "sent with XOAUTH2"
    msg.set_content("hello")
    result = asyncio.run(send_raw(settings.smtp, bytes(msg), owner, [owner]))
    assert result.outcome is Outcome.SENT, result.detail
    assert stack.smtp_log(owner)[-1]["auth"] == owner
    assert stack.message_count(owner) == 1
    stats = stack.oauth_stats(client_id)["stats"]
    assert stats["refresh"] == 1  # one access token served IMAP, SMTP and the send
    assert stats["introspect_active"] == 3 and "introspect_inactive" not in stats
    no_token_in(caplog.text, stack, client_id)


def test_expired_token_is_refreshed_before_login(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    settings, client_id = signed_in(tmp_path, stack, owner, memory_keyring, access_ttl=1)
    imap_login(settings)
    time.sleep(1.1)  # the access token is now expired at the server too
    imap_login(settings)
    smtp_login(settings)
    stats = stack.oauth_stats(client_id)["stats"]
    assert stats["refresh"] == 3  # a new token before each login: an expired one never sent
    assert "introspect_inactive" not in stats


def test_revoked_access_token_is_refreshed_and_retried(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings, client_id = signed_in(tmp_path, stack, owner, memory_keyring)
    imap_login(settings)
    assert stack.oauth_revoke(client_id, "access") == 1
    imap_login(settings)  # refused, refreshed, retried on the same connection
    assert stack.oauth_revoke(client_id, "access") == 2
    smtp_login(settings)
    stats = stack.oauth_stats(client_id)["stats"]
    assert stats["refresh"] == 3 and stats["introspect_inactive"] == 2
    assert "refused the OAuth2 token" in caplog.text
    no_token_in(caplog.text, stack, client_id)


def test_revoked_refresh_token_asks_for_mailbot_auth(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    settings, client_id = signed_in(tmp_path, stack, owner, memory_keyring)
    stack.oauth_revoke(client_id, "all")
    with pytest.raises(AuthError) as info:
        imap_login(settings)
    message = str(info.value)
    assert f"the OAuth2 sign-in for {owner} is no longer valid (invalid_grant" in message
    assert "run `mailbot auth` to sign in again" in message
    with pytest.raises(AuthError, match="run `mailbot auth`"):
        smtp_login(settings)
    no_token_in(message, stack, client_id)


def test_rotated_refresh_token_is_stored(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    settings, client_id = signed_in(tmp_path, stack, owner, memory_keyring, rotate_refresh=True)
    key = oauth.token_source(settings.imap).key
    first = memory_keyring.get_password(KEYRING_SERVICE, key)
    imap_login(settings)
    second = memory_keyring.get_password(KEYRING_SERVICE, key)
    assert second and second != first
    oauth.reset()  # as after a restart: only the stored refresh token is left
    imap_login(settings)  # the old refresh token is revoked: this works only with the new one
    assert stack.oauth_stats(client_id)["stats"].get("refresh_invalid") is None


def test_password_keyring_logs_in(
    stack: MailStack, owner: str, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    path = oauth_config(tmp_path, stack, owner, "unused")
    text = path.read_text().replace('auth = "oauth2"', "password_keyring = true")
    path.write_text(text.replace("[oauth2]", "[oauth2]\n# unused by the servers"))
    settings = load_settings(path)
    memory_keyring.set_password(KEYRING_SERVICE, f"{owner}@127.0.0.1", stack.password)
    assert imap_login(settings) == 0
    assert "logged in" in smtp_login(settings)


def test_device_flow_honours_interval_and_slow_down(
    stack: MailStack, owner: str, tmp_path: Path
) -> None:
    client_id = stack.oauth_client(owner, slow_down=True, device_polls=2, interval=0.25)
    settings = load_settings(oauth_config(tmp_path, stack, owner, client_id))
    assert settings.oauth2 is not None
    waits: list[float] = []
    lines: list[str] = []
    response = oauth.device_flow(settings.oauth2, lines.append, sleep=waits.append)
    assert waits == [0.25, 5.25, 5.25]  # slow_down at the 1st poll, pending at the 2nd
    assert response.refresh_token and response.expires_in == 3600
    assert "enter the code WDJB-MJHT" in lines[0]
    stats = stack.oauth_stats(client_id)["stats"]
    assert (stats["device_poll"], stats["device_granted"]) == (3, 1)


# --------------------------------------------------------------------------- mailbot auth


def test_auth_cli_device_flow_stores_in_keyring(
    stack: MailStack, owner: str, tmp_path: Path
) -> None:
    client_id = stack.oauth_client(owner, device_polls=2, interval=0.1)
    config = oauth_config(tmp_path, stack, owner, client_id)
    ring = tmp_path / "keyring.json"
    run_env = {**env(), "PYTHON_KEYRING_BACKEND": "tests.fakekeyring.FileKeyring",
               "MAILBOT_TEST_KEYRING": str(ring)}
    r = subprocess.run([sys.executable, "-m", "mailbot", "-vv", "auth", "--config", str(config)],
                       capture_output=True, text=True, timeout=60, env=run_env, cwd=str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"open {stack.oauth_url}/activate in a browser" in r.stdout
    assert "enter the code WDJB-MJHT" in r.stdout
    assert "the system keyring (tests.fakekeyring.FileKeyring)" in r.stdout
    assert "ok    IMAP login" in r.stdout and "ok    SMTP login" in r.stdout
    assert "warning" not in r.stdout
    stored = json.loads(ring.read_text())
    assert list(stored) == [f"mailbot/oauth2:{client_id}:{owner}"]
    assert not (tmp_path / "data" / oauth.TOKEN_FILE).exists()
    no_token_in(r.stdout + r.stderr, stack, client_id)


def test_auth_cli_without_keyring_uses_a_private_file_then_check(
    stack: MailStack, owner: str, tmp_path: Path
) -> None:
    client_id = stack.oauth_client(owner, device_polls=1, interval=0.1)
    config = oauth_config(tmp_path, stack, owner, client_id)
    run_env = {**env(), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    r = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), "auth"],
                       capture_output=True, text=True, timeout=60, env=run_env, cwd=str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    token_file = tmp_path / "data" / oauth.TOKEN_FILE
    assert "warning: no usable system keyring (no keyring backend is available" in r.stdout
    assert f"kept in {token_file}, readable by you only (mode 0600)" in r.stdout
    assert "no usable system keyring" in r.stderr  # the log says so too
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert list(json.loads(token_file.read_text())) == [f"oauth2:{client_id}:{owner}"]
    checked = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), "check"],
                             capture_output=True, text=True, timeout=60, env=run_env,
                             cwd=str(ROOT))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    token_line = next(i for i, line in enumerate(lines) if "OAuth2 token" in line)
    assert lines[token_line].startswith(f"ok    OAuth2 token: new access token for {owner}")
    assert token_line < next(i for i, line in enumerate(lines) if "IMAP login" in line)
    no_token_in(r.stdout + r.stderr + checked.stdout + checked.stderr, stack, client_id)


def test_auth_cli_loopback_flow(stack: MailStack, owner: str, tmp_path: Path) -> None:
    client_id = stack.oauth_client(owner)
    config = oauth_config(tmp_path, stack, owner, client_id, token_store="file")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "auth", "--loopback"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=str(ROOT))
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(f"{stack.oauth_url}/authorize?"):
                break
        else:
            raise AssertionError("no sign-in address printed: " + "".join(seen))
        # the "browser": the server signs in at once and redirects to mailbot's loopback
        with urllib.request.urlopen(line.strip(), timeout=10) as resp:
            assert b"signed in" in resp.read()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "ok    IMAP login" in out and "ok    SMTP login" in out
    assert stack.oauth_stats(client_id)["stats"]["code_granted"] == 1
    assert (tmp_path / "data" / oauth.TOKEN_FILE).exists()
    no_token_in("".join(seen) + out + err, stack, client_id)


def test_auth_cli_without_oauth2_config(tmp_path: Path) -> None:
    from .helpers import MINIMAL_CONFIG

    path = tmp_path / "config.toml"
    path.write_text(MINIMAL_CONFIG)
    r = cli(path, "auth", timeout=30)
    assert r.returncode == 78
    assert 'no server signs in with OAuth2: set auth = "oauth2"' in r.stderr
