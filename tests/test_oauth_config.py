"""[oauth2], auth = "oauth2" and the keyring secret source: config validation, pure helpers.

No network and no mail server: files in tmp_path and an in-memory keyring backend.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import tomllib
import urllib.parse
from pathlib import Path

import keyring
import pytest

from mailbot import oauth
from mailbot.config import KEYRING_SERVICE, OAuth2Settings, Secret, Settings, load_settings
from mailbot.errors import AuthError, ConfigError, MailServerError

from .fakekeyring import MemoryKeyring
from .test_config import ENV, load, problem

OAUTH_IMAP: dict[str, str | None] = {"auth": '"oauth2"'}
GOOGLE: dict[str, str | None] = {"provider": '"google"', "client_id": '"cid.apps"'}


def oauth_load(tmp_path: Path, oauth2: dict[str, str | None],
               **more: dict[str, str | None]) -> Settings:
    return load(tmp_path, {"imap": OAUTH_IMAP, "smtp": OAUTH_IMAP, "oauth2": oauth2, **more})


def oauth_problem(tmp_path: Path, oauth2: dict[str, str | None] | None,
                  **more: dict[str, str | None]) -> str:
    overrides: dict[str, dict[str, str | None]] = {"imap": OAUTH_IMAP, **more}
    if oauth2 is not None:
        overrides["oauth2"] = oauth2
    return problem(tmp_path, overrides)


# --------------------------------------------------------------------------- loading


def test_password_is_the_default_auth(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.imap.auth == s.smtp.auth == "password"
    assert s.imap.oauth2 is None and s.oauth2 is None


def test_google_preset(tmp_path: Path) -> None:
    s = oauth_load(tmp_path, GOOGLE)
    oa = s.imap.oauth2
    assert oa is not None and s.smtp.oauth2 is oa and s.oauth2 is oa
    assert oa.token_url == "https://oauth2.googleapis.com/token"
    assert oa.device_url == "https://oauth2.googleapis.com/device/code"
    assert oa.auth_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert oa.scopes == ("https://mail.google.com/",)
    assert not oa.client_secret.is_set  # a public client
    assert oa.token_store == "auto" and oa.data_dir == s.data.dir
    assert oa.tenant == ""


def test_microsoft_preset_with_tenant(tmp_path: Path) -> None:
    s = oauth_load(tmp_path, {"provider": '"microsoft"', "client_id": '"app-id"',
                              "tenant": '"contoso.onmicrosoft.com"'})
    oa = s.oauth2
    assert oa is not None
    base = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/"
    assert (oa.token_url, oa.device_url, oa.auth_url) == (
        base + "token", base + "devicecode", base + "authorize")
    assert oa.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All",
                         "https://outlook.office.com/SMTP.Send", "offline_access")
    s = oauth_load(tmp_path, {"provider": '"Microsoft"', "client_id": '"app-id"'})
    assert s.oauth2 is not None and s.oauth2.tenant == "common"
    assert "/common/oauth2/v2.0/token" in s.oauth2.token_url


def test_custom_provider_and_only_smtp_on_oauth2(tmp_path: Path) -> None:
    s = load(tmp_path, {"smtp": OAUTH_IMAP, "oauth2": {
        "provider": '"custom"', "client_id": '"c"', "token_url": '"http://127.0.0.1:9/token"',
        "device_url": '"https://id.example/device"', "scopes": '["mail", "offline"]',
        "token_store": '"file"', "client_secret_env": '"CS"'}}, {**ENV, "CS": "shh"})
    assert s.imap.auth == "password" and s.imap.oauth2 is None
    assert s.smtp.oauth2 is not None and s.smtp.oauth2.auth_url == ""
    assert s.smtp.oauth2.scopes == ("mail", "offline")
    assert s.smtp.oauth2.client_secret.reveal() == "shh"
    assert "shh" not in repr(s) and "shh" not in "\n".join(s.describe())
    lines = "\n".join(s.describe())
    assert "OAuth2 (XOAUTH2) sign-in" in lines and "oauth2: custom, client c" in lines


def test_oauth2_section_unused_is_fine(tmp_path: Path) -> None:
    s = load(tmp_path, {"oauth2": GOOGLE})
    assert s.oauth2 is not None and s.imap.oauth2 is None


@pytest.mark.parametrize(
    ("oauth2", "more", "expected"),
    [
        (None, {}, '[imap] auth = "oauth2" needs an [oauth2] section with provider and client_id'),
        ({"client_id": '"x"'}, {}, '[oauth2] provider is missing: add provider = "google"'),
        ({"provider": '"yahoo"', "client_id": '"x"'}, {},
         "[oauth2] provider must be one of google, microsoft, custom, got 'yahoo'"),
        ({"provider": '"google"'}, {}, "[oauth2] client_id is missing: register mailbot as an app"),
        ({"provider": '"google"', "client_id": '""'}, {}, "[oauth2] client_id must not be empty"),
        ({"provider": '"custom"', "client_id": '"x"', "device_url": '"https://a.example/d"'}, {},
         '[oauth2] provider = "custom" needs token_url'),
        ({"provider": '"custom"', "client_id": '"x"', "token_url": '"https://a.example/t"'}, {},
         '[oauth2] provider = "custom" needs device_url (device-code sign-in) or auth_url'),
        ({"provider": '"custom"', "client_id": '"x"', "token_url": '"http://id.example/t"',
          "auth_url": '"https://id.example/a"'}, {},
         "[oauth2] token_url must be an https:// URL (http:// only for a loopback host"),
        ({**GOOGLE, "token_url": '"https://evil.example/t"'}, {},
         '[oauth2] token_url is used only with provider = "custom"; google has built-in URLs'),
        ({**GOOGLE, "tenant": '"common"'}, {},
         '[oauth2] tenant is used only with provider = "microsoft": remove it'),
        ({"provider": '"microsoft"', "client_id": '"x"', "tenant": '"a b"'}, {},
         "[oauth2] tenant must be common, organizations, consumers, your tenant ID"),
        ({**GOOGLE, "scopes": '["a b"]'}, {}, "[oauth2] scopes must be a list of single scopes"),
        ({**GOOGLE, "token_store": '"vault"'}, {},
         "[oauth2] token_store must be one of auto, keyring, file, got 'vault'"),
        ({**GOOGLE, "client_secret": '"x"', "client_secret_command": '"pass show x"'}, {},
         "[oauth2] sets client_secret and client_secret_command: keep exactly one of "
         "client_secret, client_secret_env, client_secret_command or client_secret_keyring"),
        (GOOGLE, {"imap": {**OAUTH_IMAP, "password": '"pw"'}},
         '[imap] auth = "oauth2" signs in with a token, not a password: remove the password'),
        (GOOGLE, {"imap": {"auth": '"kerberos"'}},
         "[imap] auth must be one of password, oauth2, got 'kerberos'"),
        ({**GOOGLE, "clientid": '"x"'}, {}, "unknown key [oauth2] clientid; did you mean"),
    ],
)
def test_validation_messages(
    tmp_path: Path,
    oauth2: dict[str, str | None] | None,
    more: dict[str, dict[str, str | None]],
    expected: str,
) -> None:
    assert expected in oauth_problem(tmp_path, oauth2, **more)


def test_password_keyring_excludes_the_other_sources(tmp_path: Path) -> None:
    message = problem(tmp_path, {"smtp": {"password_env": '"PW"', "password_keyring": "true"}})
    assert ("[smtp] sets password_env and password_keyring: keep exactly one of password, "
            "password_env, password_command or password_keyring") in message
    assert "[imap] password_keyring must be true or false" in problem(
        tmp_path, {"imap": {"password_keyring": '"yes"'}})


def test_example_oauth2_block_loads_when_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text()
    head, _, block = example.partition("# [oauth2]")
    lines = ["[oauth2]"]
    for line in block.splitlines():
        key = line.removeprefix("# ").split("=", 1)[0].strip()
        if key in ("provider", "client_id", "client_secret", "scopes", "token_store",
                   "timeout_seconds"):
            lines.append(line.removeprefix("# "))
    text = head.replace('auth = "password"', 'auth = "oauth2"') + "\n".join(lines) + "\n"
    tomllib.loads(text)
    s = load_settings(_write(tmp_path, text), ENV)
    assert s.imap.auth == "oauth2" and s.oauth2 is not None
    assert s.oauth2.provider == "google" and s.oauth2.timeout_seconds == 30


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- keyring secrets


def test_password_keyring_reads_the_system_keyring(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    s = load(tmp_path, {"imap": {"password_keyring": "true", "username": '"olivia@linen.example"'}})
    secret = s.imap.password
    assert repr(secret) == "Secret(<from keyring mailbot/olivia@linen.example@imap.linen.example>)"
    with pytest.raises(ConfigError) as info:
        secret.reveal()
    assert str(info.value) == (
        "[imap] password_keyring: the system keyring has no entry "
        "'olivia@linen.example@imap.linen.example' for service 'mailbot'; store it with: "
        "keyring set mailbot olivia@linen.example@imap.linen.example"
    )
    memory_keyring.set_password(KEYRING_SERVICE, "olivia@linen.example@imap.linen.example", "pw1")
    assert secret.reveal() == "pw1"
    assert "pw1" not in repr(secret) and "keyring" in secret.source


def test_keyring_secret_without_a_usable_backend(tmp_path: Path) -> None:
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        secret = Secret("[oauth2]", "keyring", "oauth2-client-secret:c", name="client_secret")
        with pytest.raises(ConfigError, match=r"^\[oauth2\] client_secret_keyring: there is no "
                                              r"usable system keyring \(no keyring backend"):
            secret.reveal()
        assert oauth.keyring_backend()[0] is None
    finally:
        keyring.set_keyring(previous)


# --------------------------------------------------------------------------- pure helpers


def test_xoauth2_string() -> None:
    expected = "user=a@b.example\x01auth=Bearer tok\x01\x01"
    assert oauth.xoauth2_string("a@b.example", "tok") == expected


def test_pkce_pair_is_s256() -> None:
    verifier, challenge = oauth.pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert oauth.pkce_pair()[0] != verifier


def test_authorize_url(tmp_path: Path) -> None:
    oa = oauth_load(tmp_path, GOOGLE).oauth2
    assert oa is not None
    url = oauth.authorize_url(oa, oauth.redirect_uri(oa, 8123), "st", "ch")
    parts = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(parts.query))
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert q == {"client_id": "cid.apps", "redirect_uri": "http://127.0.0.1:8123",
                 "response_type": "code", "scope": "https://mail.google.com/", "state": "st",
                 "code_challenge": "ch", "code_challenge_method": "S256",
                 "access_type": "offline", "prompt": "consent"}
    ms = oauth_load(tmp_path, {"provider": '"microsoft"', "client_id": '"x"'}).oauth2
    assert ms is not None and oauth.redirect_uri(ms, 5) == "http://localhost:5"


def test_token_response_hides_tokens() -> None:
    r = oauth.parse_token_response(
        {"access_token": "AT-123", "refresh_token": "RT-456", "expires_in": "3599"}, "h")
    assert (r.access_token, r.refresh_token, r.expires_in) == ("AT-123", "RT-456", 3599.0)
    assert "AT-123" not in repr(r) and "RT-456" not in repr(r)
    with pytest.raises(MailServerError, match="without an access token"):
        oauth.parse_token_response({"token_type": "Bearer"}, "h")


def test_file_store_is_private(tmp_path: Path) -> None:
    store = oauth.FileStore(tmp_path / "d" / oauth.TOKEN_FILE)
    assert store.get("k") is None
    store.put("k", "v1")
    store.put("j", "v2")
    assert (store.get("k"), store.get("j")) == ("v1", "v2")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert list(store.path.parent.iterdir()) == [store.path]  # no temp file left


def _custom(tmp_path: Path, token_url: str) -> Settings:
    return oauth_load(tmp_path, {"provider": '"custom"', "client_id": '"c"',
                                 "token_url": f'"{token_url}"',
                                 "device_url": '"http://127.0.0.1:9/device"',
                                 "timeout_seconds": "2"})


def test_no_stored_sign_in_is_an_auth_error(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    s = _custom(tmp_path, "http://127.0.0.1:9/token")
    with pytest.raises(AuthError) as info:
        oauth.token_source(s.imap).access_token()
    assert "no OAuth2 sign-in is stored for olivia@linen.example" in str(info.value)
    assert "run `mailbot auth`" in str(info.value)


def test_unreachable_token_endpoint_is_transient(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = _custom(tmp_path, f"http://127.0.0.1:{port}/token")
    source = oauth.token_source(s.imap)
    assert source is oauth.token_source(s.smtp)  # one account, one token
    memory_keyring.set_password(KEYRING_SERVICE, source.key, "RT-secret")
    with pytest.raises(MailServerError) as info:
        source.access_token()
    assert not isinstance(info.value, AuthError)
    assert f"cannot reach the OAuth2 token endpoint at 127.0.0.1:{port}" in str(info.value)
    assert "RT-secret" not in str(info.value)


def test_keyring_store_chosen_when_usable(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    oa = oauth_load(tmp_path, GOOGLE).oauth2
    assert isinstance(oa, OAuth2Settings)
    store = oauth.open_store(oa)
    assert isinstance(store, oauth.KeyringStore) and not store.warning
    assert "tests.fakekeyring.MemoryKeyring" in store.name
