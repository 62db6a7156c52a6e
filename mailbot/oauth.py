"""OAuth2 sign-in for IMAP and SMTP (XOAUTH2): flows, token refresh, refresh-token storage.

Layers, in the style of the rest of mailbot:

* pure helpers: :func:`xoauth2_string`, :func:`pkce_pair`, :func:`authorize_url`,
  :func:`parse_token_response`;
* HTTP with the stdlib only (``urllib``, a timeout on every request): the token endpoint
  (refresh, device-code and authorization-code grants) and the device-authorization
  endpoint (RFC 8628);
* sign-in flows for ``mailbot auth``: :func:`device_flow` (default: prints a URL and a
  code, polls honouring ``interval`` and ``slow_down``) and :func:`loopback_flow`
  (RFC 8252 with PKCE: a one-shot HTTP server on 127.0.0.1 receives the redirect);
* :class:`TokenSource`: one account's access token, cached in memory and refreshed when
  within 60 s of expiry; a rotated refresh token is stored at once;
* refresh-token storage: the system keyring when a usable backend exists, else a file
  ``oauth2-tokens.json`` (mode 0600) in the data directory, with a warning.

Errors: an unreachable or failing token endpoint is a :class:`MailServerError` (the daemon
retries); a refused refresh token (``invalid_grant``) or a missing sign-in is an
:class:`AuthError` that tells the owner to run ``mailbot auth``. Tokens are never logged,
printed or put in an exception message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Protocol

from .config import KEYRING_SERVICE, OAuth2Settings, ServerSettings, Settings
from .errors import AuthError, ConfigError, MailServerError

__all__ = [
    "EXPIRY_MARGIN_SECONDS",
    "TOKEN_FILE",
    "FileStore",
    "KeyringStore",
    "TokenResponse",
    "TokenSource",
    "TokenStore",
    "authorize_url",
    "device_flow",
    "keyring_backend",
    "loopback_flow",
    "open_store",
    "parse_token_response",
    "pkce_pair",
    "reset",
    "sign_in",
    "token_source",
    "xoauth2_string",
]

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXPIRY_MARGIN_SECONDS = 60.0  # refresh an access token this long before it expires
SLOW_DOWN_SECONDS = 5.0  # RFC 8628 3.5: add this to the poll interval on "slow_down"
DEFAULT_POLL_SECONDS = 5.0  # RFC 8628: when the server gives no interval
LOOPBACK_WAIT_SECONDS = 300.0
TOKEN_FILE = "oauth2-tokens.json"
_MAX_BODY = 1_000_000
_RUN_AUTH = "run `mailbot auth` to sign in again"


# --------------------------------------------------------------------------- pure helpers


def xoauth2_string(user: str, token: str) -> str:
    """The XOAUTH2 SASL initial response (before base64): ``user=U^Aauth=Bearer T^A^A``."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` pair, method S256 (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)  # 64 characters from the unreserved set
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def redirect_uri(oa: OAuth2Settings, port: int) -> str:
    """The loopback redirect. Microsoft registers ``http://localhost`` (any port matches);
    Google and RFC 8252 prefer the literal ``127.0.0.1``."""
    host = "localhost" if oa.provider == "microsoft" else "127.0.0.1"
    return f"http://{host}:{port}"


def authorize_url(oa: OAuth2Settings, redirect: str, state: str, challenge: str) -> str:
    """The address the owner opens in a browser for the loopback flow."""
    params = {
        "client_id": oa.client_id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": " ".join(oa.scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if oa.provider == "google":  # else Google gives a refresh token only at the first consent
        params.update(access_type="offline", prompt="consent")
    sep = "&" if "?" in oa.auth_url else "?"
    return oa.auth_url + sep + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


@dataclass(frozen=True)
class TokenResponse:
    """A token endpoint's answer; ``repr`` shows no token."""

    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str = field(default="", repr=False)  # "": the old one stays valid


def parse_token_response(data: dict[str, Any], host: str) -> TokenResponse:
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise MailServerError(f"the OAuth2 token endpoint at {host} answered without an access "
                              "token; mailbot will try again")
    raw_expiry = data.get("expires_in", 3600)
    try:
        expires_in = float(raw_expiry)
    except (TypeError, ValueError):
        expires_in = 3600.0
    refresh = data.get("refresh_token")
    return TokenResponse(access, max(expires_in, 0.0), refresh if isinstance(refresh, str) else "")


# --------------------------------------------------------------------------- HTTP


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _post(url: str, form: dict[str, str], timeout: float, what: str) -> tuple[int, dict[str, Any]]:
    """POST a form; return (HTTP status, JSON object). Network trouble, 5xx, 429 and
    answers that are not JSON raise MailServerError (transient, retried)."""
    host = _host(url)
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "mailbot",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, raw = int(resp.status), resp.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read(_MAX_BODY)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MailServerError(
            f"cannot reach the OAuth2 {what} at {host} ({reason}); mailbot will try again"
        ) from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status >= 500 or status == 429:
        raise MailServerError(
            f"the OAuth2 {what} at {host} is failing (HTTP {status}); mailbot will try again"
        )
    if not isinstance(data, dict):
        raise MailServerError(
            f"the OAuth2 {what} at {host} answered HTTP {status} with something that is not "
            "JSON; check the URL, mailbot will try again"
        )
    return status, data


def _client_form(oa: OAuth2Settings) -> dict[str, str]:
    form = {"client_id": oa.client_id}
    if oa.client_secret.is_set:
        form["client_secret"] = oa.client_secret.reveal()
    return form


def _refused(data: dict[str, Any], host: str, doing: str, username: str = "") -> AuthError:
    """The AuthError for an RFC 6749 error answer (never quoting a token)."""
    error = str(data.get("error") or "unknown_error")[:80]
    described = str(data.get("error_description") or "").strip().splitlines()
    detail = f"{error}: {described[0][:200]}" if described else error
    who = f" for {username}" if username else ""
    if error == "invalid_grant":
        return AuthError(
            f"the OAuth2 sign-in{who} is no longer valid ({detail}); it was revoked, expired "
            f"or the password changed: {_RUN_AUTH}"
        )
    if error in ("invalid_client", "unauthorized_client"):
        return AuthError(
            f"the OAuth2 provider at {host} refused the app while {doing} ({detail}): check "
            "[oauth2] client_id and client_secret, and that the app allows this sign-in "
            "(see docs/oauth2.md)"
        )
    return AuthError(f"the OAuth2 provider at {host} refused {doing}{who} ({detail}): {_RUN_AUTH}")


def refresh_grant(oa: OAuth2Settings, refresh_token: str, username: str = "") -> TokenResponse:
    """Trade a refresh token for a new access token (and maybe a new refresh token)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **_client_form(oa)}
    status, data = _post(oa.token_url, form, oa.timeout_seconds, "token endpoint")
    if status != 200:
        raise _refused(data, _host(oa.token_url), "the token refresh", username)
    return parse_token_response(data, _host(oa.token_url))


# --------------------------------------------------------------------------- token storage


class TokenStore(Protocol):
    name: str  # where tokens are kept, safe to print
    warning: str  # "" or why this is not the system keyring

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...


def keyring_backend() -> tuple[Any, str]:
    """``(backend, name)`` of a usable system keyring, or ``(None, why not)``.

    "Usable" excludes keyring's fail and null backends and a chainer with nothing in it.
    """
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None, "the keyring package is not installed"
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken backend configuration
        return None, f"the keyring backend could not be loaded ({type(exc).__name__})"
    kind = type(backend)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(backend, fail.Keyring) or name == "keyring.backends.null.Keyring":
        return None, "no keyring backend is available (no Secret Service, KWallet or Keychain)"
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None, "no keyring backend is available"
    return backend, name


class KeyringStore:
    """Refresh tokens in the system keyring, service ``mailbot``."""

    warning = ""

    def __init__(self, backend: Any, backend_name: str) -> None:
        self._backend = backend
        self.name = f"the system keyring ({backend_name})"

    def get(self, key: str) -> str | None:
        try:
            value = self._backend.get_password(KEYRING_SERVICE, key)
        except Exception as exc:
            raise ConfigError(
                f"the system keyring could not be read ({type(exc).__name__}); unlock it, or "
                'set [oauth2] token_store = "file"'
            ) from None
        return value if isinstance(value, str) and value else None

    def put(self, key: str, value: str) -> None:
        try:
            self._backend.set_password(KEYRING_SERVICE, key, value)
        except Exception as exc:
            raise ConfigError(
                f"the system keyring could not store the OAuth2 refresh token "
                f'({type(exc).__name__}); unlock it, or set [oauth2] token_store = "file"'
            ) from None


class FileStore:
    """Refresh tokens in a JSON file readable by the owner only (0600), written atomically."""

    def __init__(self, path: Path, warning: str = "") -> None:
        self.path = path
        self.name = f"the file {path} (mode 0600)"
        self.warning = warning
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path} ({exc.strerror}); check its permissions"
                              ) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise ConfigError(
                f"{self.path} is damaged (not JSON); delete it and run `mailbot auth`"
            ) from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._read().get(key) or None

    def put(self, key: str, value: str) -> None:
        with self._lock:
            data = self._read()
            data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise


_STORES: dict[tuple[str, str], TokenStore] = {}
_STORES_LOCK = threading.Lock()


def open_store(oa: OAuth2Settings) -> TokenStore:
    """Where refresh tokens live, per ``[oauth2] token_store`` (auto: keyring, else file)."""
    key = (oa.token_store, str(oa.data_dir))
    with _STORES_LOCK:
        if key in _STORES:
            return _STORES[key]
        path = oa.data_dir / TOKEN_FILE
        store: TokenStore
        if oa.token_store == "file":
            store = FileStore(path)
        else:
            backend, detail = keyring_backend()
            if backend is not None:
                store = KeyringStore(backend, detail)
            elif oa.token_store == "keyring":
                raise ConfigError(
                    f'[oauth2] token_store = "keyring", but {detail}: install and unlock a '
                    'keyring, or use token_store = "auto" or "file"'
                )
            else:
                warning = (
                    f"no usable system keyring ({detail}): the OAuth2 refresh token is kept in "
                    f"{path}, readable by you only (mode 0600)"
                )
                log.warning("%s", warning)
                store = FileStore(path, warning)
        _STORES[key] = store
        return store


# --------------------------------------------------------------------------- access tokens


class TokenSource:
    """One account's OAuth2 access token: cached, refreshed near expiry, thread-safe."""

    def __init__(
        self,
        oa: OAuth2Settings,
        username: str,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oa = oa
        self.username = username
        self.clock = clock
        self._store = store
        self._lock = threading.Lock()
        self._access = ""
        self._expires = 0.0

    @property
    def store(self) -> TokenStore:
        if self._store is None:
            self._store = open_store(self.oa)
        return self._store

    @property
    def key(self) -> str:
        """The refresh token's entry in the store."""
        return f"oauth2:{self.oa.client_id}:{self.username.lower()}"

    @property
    def seconds_left(self) -> float:
        return max(self._expires - self.clock(), 0.0) if self._access else 0.0

    def access_token(self, *, force: bool = False) -> str:
        """A usable access token: the cached one unless it expires within 60 s (or
        ``force``), else a new one from the stored refresh token."""
        with self._lock:
            now = self.clock()
            if not force and self._access and now < self._expires - EXPIRY_MARGIN_SECONDS:
                return self._access
            refresh = self.store.get(self.key)
            if not refresh:
                raise AuthError(
                    f"no OAuth2 sign-in is stored for {self.username} (looked in "
                    f"{self.store.name}): run `mailbot auth` to sign in"
                )
            self._access = ""
            response = refresh_grant(self.oa, refresh, self.username)
            self._remember(response, now)
            if response.refresh_token and response.refresh_token != refresh:
                self.store.put(self.key, response.refresh_token)
                log.info("stored the new OAuth2 refresh token for %s (the provider rotated it)",
                         self.username)
            log.info("refreshed the OAuth2 access token for %s (valid %d min)",
                     self.username, response.expires_in // 60)
            return self._access

    def accept(self, response: TokenResponse) -> None:
        """A finished sign-in: keep its refresh token in the store, its access token here."""
        if not response.refresh_token:
            raise AuthError(
                "the OAuth2 provider signed you in but gave no refresh token, so mailbot could "
                "not renew access later: for microsoft keep offline_access in scopes; then "
                "run `mailbot auth` again"
            )
        with self._lock:
            self.store.put(self.key, response.refresh_token)
            self._remember(response, self.clock())

    def forget_access_token(self) -> None:
        with self._lock:
            self._access = ""

    def _remember(self, response: TokenResponse, now: float) -> None:
        self._access = response.access_token
        self._expires = now + response.expires_in


_SOURCES: dict[tuple[OAuth2Settings, str], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(server: ServerSettings) -> TokenSource:
    """The process-wide token source of ``server``'s account (IMAP and SMTP share one
    when they use the same account, so a token refreshed for one serves the other)."""
    if server.oauth2 is None:
        raise ConfigError('auth = "oauth2" needs an [oauth2] section (see docs/oauth2.md)')
    key = (server.oauth2, server.username.lower())
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is None:
            source = _SOURCES[key] = TokenSource(server.oauth2, server.username)
        return source


def reset() -> None:
    """Forget cached access tokens and stores (tests; a changed config)."""
    with _SOURCES_LOCK:
        _SOURCES.clear()
    with _STORES_LOCK:
        _STORES.clear()


# --------------------------------------------------------------------------- sign-in flows

Out = Callable[[str], None]


def device_flow(
    oa: OAuth2Settings,
    out: Out,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TokenResponse:
    """RFC 8628: show a URL and a code, then poll the token endpoint until the owner has
    signed in (``authorization_pending``), slowing down by 5 s on each ``slow_down``."""
    if not oa.device_url:
        raise ConfigError(
            "[oauth2] has no device_url, so there is no device-code sign-in: set device_url, "
            "or run `mailbot auth --loopback`"
        )
    host = _host(oa.device_url)
    form = {**_client_form(oa), "scope": " ".join(oa.scopes)}
    status, data = _post(oa.device_url, form, oa.timeout_seconds, "device authorization endpoint")
    if status != 200:
        if oa.provider == "google":  # Google's device flow does not allow the mail scope
            error = str(data.get("error") or "refused")[:80]
            raise AuthError(f"Google refused the device-code sign-in ({error}): Google allows "
                            "mail access only with the browser sign-in; run "
                            "`mailbot auth --loopback`")
        raise _refused(data, host, "the device-code sign-in")
    device_code = data.get("device_code")
    user_code = data.get("user_code")
    verification = data.get("verification_uri") or data.get("verification_url")  # Google: _url
    if not all(isinstance(v, str) and v for v in (device_code, user_code, verification)):
        raise MailServerError(f"the OAuth2 device authorization endpoint at {host} gave an "
                              "incomplete answer (no device_code, user_code or verification_uri)")
    assert isinstance(device_code, str)
    try:
        interval = max(float(data.get("interval", DEFAULT_POLL_SECONDS)), 0.0)
        lifetime = float(data.get("expires_in", 900))
    except (TypeError, ValueError):
        interval, lifetime = DEFAULT_POLL_SECONDS, 900.0
    out(f"To sign in, open {verification} in a browser (on any device) and enter the code "
        f"{user_code}")
    complete = data.get("verification_uri_complete")
    if isinstance(complete, str) and complete:
        out(f"(or open {complete}, which has the code in it)")
    out(f"Waiting for the sign-in (up to {lifetime / 60:.0f} minutes) ...")
    deadline = clock() + lifetime
    poll = {**_client_form(oa), "grant_type": DEVICE_GRANT, "device_code": device_code}
    token_host = _host(oa.token_url)
    expired = AuthError("the sign-in code expired before the sign-in was finished: run "
                        "`mailbot auth` again")
    while True:
        sleep(interval)
        if clock() > deadline:
            raise expired
        status, data = _post(oa.token_url, poll, oa.timeout_seconds, "token endpoint")
        if status == 200:
            return parse_token_response(data, token_host)
        code = data.get("error")
        if code == "authorization_pending":
            continue
        if code == "slow_down":
            interval += SLOW_DOWN_SECONDS
            log.debug("device sign-in: slow_down, polling every %g s now", interval)
            continue
        if code == "access_denied":
            raise AuthError("the sign-in was declined: run `mailbot auth` again and allow "
                            "mailbot access to your mail")
        if code == "expired_token":
            raise expired
        raise _refused(data, token_host, "the device-code sign-in")


def loopback_flow(
    oa: OAuth2Settings, out: Out, *, wait_seconds: float = LOOPBACK_WAIT_SECONDS
) -> TokenResponse:
    """RFC 8252 with PKCE: print the sign-in address; the browser is sent back to a
    one-shot server on 127.0.0.1, and the code it brings is traded for tokens."""
    if not oa.auth_url:
        raise ConfigError(
            "[oauth2] has no auth_url, so there is no browser sign-in: set auth_url, or run "
            "`mailbot auth` without --loopback (device code)"
        )
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    result: dict[str, str] = {}
    arrived = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            got = {k: v[0] for k, v in query.items() if v}
            if got.get("state") != state:
                self._answer(400, "This is not the sign-in mailbot is waiting for.")
                return
            result.update(got)
            if "code" in got:
                self._answer(200, "mailbot: signed in. You can close this tab.")
            else:
                self._answer(400, "mailbot: the sign-in was not completed.")
            arrived.set()

        def _answer(self, status: int, text: str) -> None:
            body = f"<!doctype html><title>mailbot</title><p>{text}</p>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query string holds the authorization code: never log it

    server = HTTPServer(("127.0.0.1", 0), Callback)
    redirect = redirect_uri(oa, int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, name="oauth-loopback", daemon=True)
    thread.start()
    try:
        out("Open this address in a browser on this computer and sign in:")
        out(authorize_url(oa, redirect, state, challenge))
        if not arrived.wait(wait_seconds):
            raise AuthError(
                f"no sign-in came back within {wait_seconds / 60:.0f} minutes: run `mailbot "
                "auth` again (without --loopback to sign in on another device)"
            )
    finally:
        server.shutdown()
        server.server_close()
    if "code" not in result:
        error = result.get("error", "no code")[:80]
        raise AuthError(f"the sign-in was not completed ({error}): run `mailbot auth` again")
    form = {
        **_client_form(oa),
        "grant_type": "authorization_code",
        "code": result["code"],
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }
    status, data = _post(oa.token_url, form, oa.timeout_seconds, "token endpoint")
    if status != 200:
        raise _refused(data, _host(oa.token_url), "the browser sign-in")
    return parse_token_response(data, _host(oa.token_url))


def sign_in(
    settings: Settings,
    out: Out,
    *,
    loopback: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``mailbot auth``: sign each OAuth2 account in and store its refresh token."""
    servers = [s for s in (settings.imap, settings.smtp) if s.auth == "oauth2"]
    if not servers:
        raise ConfigError(
            'no server signs in with OAuth2: set auth = "oauth2" in [imap] and [smtp] and add '
            "an [oauth2] section (see docs/oauth2.md)"
        )
    done: set[str] = set()
    for server in servers:
        source = token_source(server)
        if source.key in done:
            continue
        done.add(source.key)
        store = source.store
        if store.warning:
            out(f"warning: {store.warning}")
        assert server.oauth2 is not None
        out(f"Signing in {server.username} with {server.oauth2.provider} "
            f"(sign in as {server.username}).")
        if loopback:
            response = loopback_flow(server.oauth2, out)
        else:
            response = device_flow(server.oauth2, out, sleep=sleep)
        source.accept(response)
        out(f"Signed in; the refresh token is stored in {store.name}.")
