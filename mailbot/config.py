"""TOML configuration -> frozen, validated settings.

``load_settings(path)`` reads the owner's ``config.toml`` and returns a
:class:`Settings` tree of frozen dataclasses, or raises :class:`ConfigError`.
Every problem in the file is collected first, so one error lists them all, each
as one sentence that names the key and says how to fix it::

    config.toml: [imap] port must be a whole number between 1 and 65535, got 'abc'

The keys of DESIGN section 8 are an interface (owners' scripts and deployment
recipes write them): add keys freely, never rename one. ``config.example.toml``
at the top of the repository documents every key and must always load.

Passwords never appear in a ``repr``, ``str`` or :meth:`Settings.describe`:
they are held by :class:`Secret`, which resolves its value only on
:meth:`Secret.reveal`. A missing password is not an error at load time (so
``mailbot customers`` works with no secret available); revealing it is.

A server logs in with a password (``auth = "password"``, the default) or with
OAuth2 (``auth = "oauth2"``, XOAUTH2 with an access token; see ``oauth.py`` and
docs/oauth2.md). The ``[oauth2]`` section says which provider and app; it is
attached to each server that uses it as ``ServerSettings.oauth2``.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import ipaddress
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_DATA_DIR",
    "KEYRING_SERVICE",
    "PASSWORD_COMMAND_TIMEOUT",
    "DataSettings",
    "DigestSettings",
    "DraftingSettings",
    "ImapSettings",
    "IngestSettings",
    "OAuth2Settings",
    "OwnerSettings",
    "RankSettings",
    "Secret",
    "SendSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "default_config_path",
    "load_settings",
]

CONFIG_ENV = "MAILBOT_CONFIG"
DEFAULT_DATA_DIR = "~/.local/share/mailbot"
PASSWORD_COMMAND_TIMEOUT = 30.0

Security = Literal["tls", "starttls", "none"]
Engine = Literal["template", "llm"]
Auth = Literal["password", "oauth2"]
OAuthProvider = Literal["google", "microsoft", "custom"]
TokenStore = Literal["auto", "keyring", "file"]
SecretKind = Literal["none", "value", "env", "command", "keyring"]

KEYRING_SERVICE = "mailbot"  # the service name of every system keyring entry mailbot reads

_SECURITY: tuple[Security, ...] = ("tls", "starttls", "none")
_ENGINES: tuple[Engine, ...] = ("template", "llm")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_AUTHS: tuple[Auth, ...] = ("password", "oauth2")
_PROVIDERS: tuple[OAuthProvider, ...] = ("google", "microsoft", "custom")
_TOKEN_STORES: tuple[TokenStore, ...] = ("auto", "keyring", "file")
_SECTIONS = (
    "owner", "imap", "smtp", "data", "ingest", "digest", "send", "rank", "drafting", "oauth2",
)


class SettingsError(ConfigError):
    """The config file has one or more problems; ``problems`` holds each sentence."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


# --------------------------------------------------------------------------- secrets


class Secret:
    """A password that is never shown: ``repr`` and ``str`` name only its source.

    Sources: a value written in the file, an environment variable (read when the
    config is loaded, from the ``env`` mapping), a command run on the first
    :meth:`reveal` (``shell=False``, 30 s timeout, first line of its output), or
    the system keyring (entry ``detail`` of service ``mailbot``, read on the first
    :meth:`reveal`). ``name`` is the config key (``password``, ``client_secret``).
    """

    __slots__ = ("_cache", "_detail", "_key", "_kind", "_name", "_value")

    def __init__(
        self,
        key: str,
        kind: SecretKind,
        detail: str = "",
        value: str | None = None,
        name: str = "password",
    ) -> None:
        self._key = key  # e.g. "[imap]"
        self._kind = kind
        self._detail = detail  # the variable name, the command line, or the keyring entry
        self._value = value  # the inline value, or the variable's value at load (None: unset)
        self._name = name
        self._cache: str | None = None

    # --- construction helpers -------------------------------------------------------
    @classmethod
    def empty(cls, key: str = "[imap]") -> Secret:
        return cls(key, "none")

    @classmethod
    def literal(cls, value: str, key: str = "[imap]") -> Secret:
        return cls(key, "value", value=value) if value else cls(key, "none")

    # --- inspection that never resolves ------------------------------------------------
    @property
    def is_set(self) -> bool:
        """Whether a source is configured (it may still fail to resolve)."""
        return self._kind != "none"

    @property
    def source(self) -> str:
        """Where the value comes from, safe to print."""
        if self._kind == "value":
            return "set in the config file"
        if self._kind == "env":
            state = "set" if self._value else "NOT SET" if self._value is None else "EMPTY"
            return f"from env {self._detail} ({state})"
        if self._kind == "command":
            return f"from command {self._program()!r}"
        if self._kind == "keyring":
            return f"from the system keyring ({KEYRING_SERVICE} / {self._detail})"
        return "not set"

    @property
    def env_var(self) -> str | None:
        """The environment variable the value comes from (password_env), if any."""
        return self._detail if self._kind == "env" else None

    def _program(self) -> str:
        try:
            return shlex.split(self._detail)[0]
        except (ValueError, IndexError):
            return "?"

    def __repr__(self) -> str:
        if self._kind == "env":
            return f"Secret(<from env {self._detail}>)"
        if self._kind == "command":
            return f"Secret(<from command {self._program()!r}>)"
        if self._kind == "value":
            return "Secret(<set in config>)"
        if self._kind == "keyring":
            return f"Secret(<from keyring {KEYRING_SERVICE}/{self._detail}>)"
        return "Secret(<not set>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self._key, self._kind, self._detail, self._value) == (
            other._key,
            other._kind,
            other._detail,
            other._value,
        )

    def __hash__(self) -> int:
        return hash((self._key, self._kind, self._detail))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self  # so dataclasses.asdict() and replace() work; the value is never copied out

    # --- resolution ---------------------------------------------------------------------
    def reveal(self) -> str:
        """The password. Raises ConfigError (naming the key, never the value) if unavailable."""
        if self._kind == "value":
            return cast(str, self._value)
        n = self._name
        if self._kind == "env":
            if self._value is None:
                raise ConfigError(
                    f"{self._key} {n}_env names {self._detail}, which is not set: "
                    f"export {self._detail} before starting mailbot, or use {n}_command"
                )
            if not self._value:
                raise ConfigError(
                    f"{self._key} {n}_env names {self._detail}, which is empty: "
                    f"put the {n.replace('_', ' ')} in {self._detail}"
                )
            return self._value
        if self._kind in ("command", "keyring"):
            if self._cache is None:
                self._cache = self._run() if self._kind == "command" else self._from_keyring()
            return self._cache
        raise ConfigError(
            f"{self._key} has no {n.replace('_', ' ')}: set {n}, {n}_env, {n}_command "
            f"or {n}_keyring"
        )

    def _from_keyring(self) -> str:
        from .oauth import keyring_backend  # keyring is imported only when a secret needs it

        what = f"{self._key} {self._name}_keyring"
        backend, why = keyring_backend()
        if backend is None:
            raise ConfigError(
                f"{what}: there is no usable system keyring ({why}); use {self._name}_env or "
                f"{self._name}_command instead"
            )
        try:
            value = backend.get_password(KEYRING_SERVICE, self._detail)
        except Exception as exc:  # keyring backends raise their own errors (locked, D-Bus)
            raise ConfigError(
                f"{what}: the system keyring could not be read ({type(exc).__name__}); "
                "unlock it, or use another source"
            ) from None
        if not value:
            raise ConfigError(
                f"{what}: the system keyring has no entry {self._detail!r} for service "
                f"{KEYRING_SERVICE!r}; store it with: keyring set {KEYRING_SERVICE} "
                f"{shlex.quote(self._detail)}"
            )
        return str(value)

    def _run(self) -> str:
        what = f"{self._key} {self._name}_command ({self._program()!r})"
        try:
            argv = shlex.split(self._detail)
        except ValueError as exc:  # checked at load; kept for Secrets built by hand
            raise ConfigError(f"{what} is not a valid command line ({exc})") from None
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PASSWORD_COMMAND_TIMEOUT,
                check=False,
                shell=False,
            )
        except FileNotFoundError:
            raise ConfigError(
                f"{what} failed: the program was not found; give its full path"
            ) from None
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"{what} did not finish within {PASSWORD_COMMAND_TIMEOUT:g} seconds; "
                "run it by hand to see what it waits for"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{what} could not be started ({exc.strerror}); check the command"
            ) from None
        if done.returncode != 0:
            raise ConfigError(
                f"{what} failed with exit status {done.returncode}; "
                "run it by hand to see why (its output is not shown, to keep secrets out of logs)"
            )
        try:
            text = done.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{what} printed something that is not UTF-8 text") from None
        # Like `pass`, the password is the first line; a trailing newline is dropped.
        first = text.split("\n", 1)[0].removesuffix("\r")
        if not first:
            raise ConfigError(
            f"{what} printed an empty {self._name.replace('_', ' ')}; check the command"
        )
        return first


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class OwnerSettings:
    name: str
    addresses: tuple[str, ...]  # lower-case; the first is the main one
    internal_domains: tuple[str, ...]  # lower-case, without "@"
    timezone: str  # an IANA name, e.g. "Europe/Berlin"
    signature: str
    business: str = ""
    tone: str = "warm, brief, personal"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def address(self) -> str:
        """The main address (the first of ``addresses``)."""
        return self.addresses[0]


@dataclass(frozen=True)
class ServerSettings:
    """One mail server. ``password`` is a :class:`Secret`; call ``.reveal()`` to log in."""

    host: str
    port: int
    security: Security  # "tls": implicit TLS; "starttls": required upgrade; "none": loopback only
    username: str
    password: Secret
    ca_file: Path | None = None  # extra CA bundle (self-signed servers); None: system CAs
    timeout_seconds: float = 60.0
    auth: Auth = "password"  # "oauth2": XOAUTH2 with a token from [oauth2]
    oauth2: OAuth2Settings | None = None  # the [oauth2] section, when auth = "oauth2"


@dataclass(frozen=True)
class OAuth2Settings:
    """The ``[oauth2]`` section: which provider and which registered app (client).

    The URLs and scopes are resolved from the provider's preset at load
    (``custom`` gives them itself). ``data_dir`` is ``[data] dir``, where the
    refresh token is kept when there is no usable system keyring.
    """

    provider: OAuthProvider
    client_id: str
    client_secret: Secret  # not set: a public client (device code or loopback with PKCE)
    token_url: str
    device_url: str  # "" : this provider/config has no device-code flow
    auth_url: str  # "" : no loopback (browser) flow
    scopes: tuple[str, ...]
    tenant: str = ""  # microsoft only: "common", "organizations", "consumers" or a tenant ID
    token_store: TokenStore = "auto"  # auto: the system keyring if usable, else a 0600 file
    timeout_seconds: float = 30.0
    data_dir: Path = Path(DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class ImapSettings(ServerSettings):
    inbox: str = "INBOX"
    sent: str = ""  # "" : detect by SPECIAL-USE \\Sent, then the usual names
    extra_folders: tuple[str, ...] = ()  # e.g. ("[Gmail]/All Mail",)


@dataclass(frozen=True)
class DataSettings:
    dir: Path  # absolute


@dataclass(frozen=True)
class IngestSettings:
    history_days: int = 730
    batch_size: int = 500
    idle_renew_seconds: int = 540  # re-issue IDLE at least this often (<= 600)
    sent_poll_seconds: int = 180
    reconnect_max_seconds: int = 300  # cap of the reconnect backoff
    body_bytes: int = 8192  # partial fetch of the text part


@dataclass(frozen=True)
class DigestSettings:
    time: str = "07:30"  # "HH:MM", in owner.timezone
    days: str = "mon-fri"  # APScheduler day_of_week expression
    size: int = 5
    grace_minutes: int = 180
    send_when_empty: bool = False
    to: str = ""  # filled with owner.addresses[0] by load_settings when not given

    @property
    def hour(self) -> int:
        return int(self.time.split(":")[0])

    @property
    def minute(self) -> int:
        return int(self.time.split(":")[1])


@dataclass(frozen=True)
class SendSettings:
    undo_seconds: int = 120
    sent_wait_seconds: int = 600  # how long an owner reply may take to show up in Sent


@dataclass(frozen=True)
class RankSettings:
    contact_cooldown_days: int = 30  # skip people the owner wrote to within this many days
    no_reason_cooldown_days: int = 90  # "for no reason" at most this often per person
    suggestion_cooldown_days: int = 30  # do not suggest the same person again sooner
    unanswered_min_business_days: int = 2  # an inbound mail is "unanswered" after this
    unanswered_max_days: int = 60  # ...and stops counting after this
    lapse_factor: float = 2.0  # lapsed: silence > factor x the customer's usual gap
    lapse_min_gaps: int = 3  # gaps needed before a personal rhythm is trusted
    gone_after_factor: float = 6.0  # silence > factor x usual gap: gone, stop suggesting
    welcome_min_days: int = 7  # welcome window after first contact
    welcome_max_days: int = 30
    quiet_loyal_min_touchpoints: int = 6  # "quiet loyal": at least this many exchanges
    quiet_loyal_min_days: int = 45  # ...and silent at least this long
    max_per_reason: int = 2  # per digest
    ignored_backoff_factor: float = 2.0  # cooldown multiplier each time a pick is ignored


@dataclass(frozen=True)
class DraftingSettings:
    engine: Engine = "template"
    prompts_dir: Path | None = None  # None: the bundled prompts/
    llm_base_url: str = ""  # OpenAI-compatible, e.g. "http://127.0.0.1:11434/v1"
    llm_model: str = ""
    llm_api_key_env: str = ""  # name of the environment variable holding the API key
    llm_timeout_seconds: float = 20.0


@dataclass(frozen=True)
class Settings:
    owner: OwnerSettings
    imap: ImapSettings
    smtp: ServerSettings
    data: DataSettings
    ingest: IngestSettings
    digest: DigestSettings
    send: SendSettings
    rank: RankSettings
    drafting: DraftingSettings
    path: Path  # the config file, absolute
    oauth2: OAuth2Settings | None = None  # the [oauth2] section, if given

    def describe(self) -> list[str]:
        """Human lines for ``mailbot check``; never a secret."""
        o = self.owner
        lines = [
            f"config: {self.path}",
            f"owner: {o.name} <{', '.join(o.addresses)}>, timezone {o.timezone}",
            "internal domains: " + (", ".join(o.internal_domains) or "none"),
        ]
        for label, srv in (("imap", self.imap), ("smtp", self.smtp)):
            ca = f", CA file {srv.ca_file}" if srv.ca_file else ""
            login = (
                f"password {srv.password.source}" if srv.auth == "password"
                else "OAuth2 (XOAUTH2) sign-in"
            )
            lines.append(
                f"{label}: {srv.host}:{srv.port} ({srv.security}), user {srv.username}, "
                f"{login}{ca}, timeout {srv.timeout_seconds:g} s"
            )
        if self.oauth2 is not None:
            oa = self.oauth2
            tenant = f", tenant {oa.tenant}" if oa.tenant else ""
            lines.append(
                f"oauth2: {oa.provider}{tenant}, client {oa.client_id}, client secret "
                f"{oa.client_secret.source}, token store {oa.token_store}"
            )
        i = self.imap
        lines.append(
            f"imap folders: inbox {i.inbox!r}, sent "
            + (repr(i.sent) if i.sent else "auto-detect")
            + ", extra "
            + (", ".join(repr(f) for f in i.extra_folders) or "none")
        )
        g = self.ingest
        lines.append(f"data: {self.data.dir}")
        lines.append(
            f"ingest: {g.history_days} days of history, batches of {g.batch_size}, "
            f"IDLE renewed every {g.idle_renew_seconds} s, Sent polled every "
            f"{g.sent_poll_seconds} s"
        )
        d = self.digest
        lines.append(
            f"digest: {d.time} {o.timezone} on {d.days}, {d.size} picks, to {d.to}"
            + (", sent even when empty" if d.send_when_empty else "")
            + f", catch-up within {d.grace_minutes} min"
        )
        lines.append(
            "send: "
            + (f"undo window {self.send.undo_seconds} s" if self.send.undo_seconds else "at once")
        )
        dr = self.drafting
        prompts = str(dr.prompts_dir) if dr.prompts_dir else "bundled prompts"
        if dr.engine == "llm":
            key = f", API key from env {dr.llm_api_key_env}" if dr.llm_api_key_env else ""
            lines.append(
                f"drafting: llm {dr.llm_model} at {dr.llm_base_url}{key} "
                f"(falls back to templates), {prompts}"
            )
        else:
            lines.append(f"drafting: templates, {prompts}")
        return lines


# --------------------------------------------------------------------------- helpers


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$MAILBOT_CONFIG`` if set (and not empty), else ``./config.toml``."""
    env = os.environ if env is None else env
    value = env.get(CONFIG_ENV, "")
    return Path(value) if value else Path("config.toml")


def _show(value: object) -> str:
    """A value as the owner wrote it, for messages."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _unquote_hint(key: str, value: object) -> str:
    """For a number written in quotes: how to write it without."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return f"; write it without quotes: {key} = {value.strip()}"
    return ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ADDRESS_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*"
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
)
_DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def _address_problem(value: str) -> str | None:
    """Why ``value`` (lower-cased, stripped) is not a bare address, or None."""
    if "<" in value or ">" in value or " " in value:
        return "give the bare address, without a name or angle brackets"
    if value.count("@") != 1 or not _ADDRESS_RE.match(value) or ".." in value:
        return "it does not look like an email address (name@example.com)"
    return None


def _is_loopback(host: str) -> bool:
    h = host.strip().lower().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _valid_days(text: str) -> str | None:
    """Why ``text`` is not a day_of_week expression we accept, or None."""
    if text == "*":
        return None
    if not text:
        return "it is empty"
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(ends):
            return f"{part!r} is not a day or a range such as mon-fri"
        for day in ends:
            if day not in _WEEKDAYS:
                close = difflib.get_close_matches(day, _WEEKDAYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return f"{day!r} is not a day name{hint}"
        if len(ends) == 2 and _WEEKDAYS.index(ends[0]) > _WEEKDAYS.index(ends[1]):
            return f"the range {part!r} runs backwards (write it as two parts, e.g. fri-sun,mon)"
    return None


def _expand(raw: str, base: Path, env: Mapping[str, str]) -> Path:
    """``~`` expanded (from ``env['HOME']`` when given), relative to ``base``, absolute."""
    if (raw == "~" or raw.startswith("~/")) and env.get("HOME"):
        p = Path(env["HOME"]) / raw[2:]
    else:
        p = Path(raw).expanduser()
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


# --------------------------------------------------------------------------- reader


class _Reader:
    """Reads typed values out of the parsed TOML, collecting one sentence per problem.

    Every key read (found or not) is remembered as known, so keys left over are
    typos; the suggestions come from the keys the loader asked for.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.problems: list[str] = []
        self.known: dict[str, list[str]] = {}
        self._bad_tables: set[str] = set()

    def error(self, message: str) -> None:
        self.problems.append(message)

    def table(self, section: str) -> dict[str, Any]:
        self.known.setdefault(section, [])
        value = self.doc.get(section, {})
        if not isinstance(value, dict):
            if section in self._bad_tables:
                return {}
            self._bad_tables.add(section)
            self.error(
                f"{section} must be a section ([{section}] on a line of its own, "
                f"then key = value lines), got {_show(value)}"
            )
            return {}
        return value

    def _get(self, section: str, key: str) -> tuple[bool, Any]:
        self.known.setdefault(section, []).append(key)
        table = self.table(section)
        return (key in table, table.get(key))

    def text(
        self,
        section: str,
        key: str,
        default: str | None = None,
        *,
        strip: bool = True,
        example: str = "",
    ) -> str:
        present, value = self._get(section, key)
        if not present:
            if default is None:
                eg = f" (e.g. {key} = {example})" if example else ""
                self.error(f"[{section}] {key} is missing: add it to the [{section}] section{eg}")
                return ""
            return default
        if not isinstance(value, str):
            self.error(
                f'[{section}] {key} must be text in quotes, got {_show(value)}: write {key} = "..."'
            )
            return default or ""
        text: str = value.strip() if strip else value
        if default is None and not text:
            eg = f" (e.g. {key} = {example})" if example else ""
            self.error(f"[{section}] {key} must not be empty{eg}")
        return text

    def integer(
        self, section: str, key: str, default: int, lo: int, hi: int, unit: str = ""
    ) -> int:
        present, value = self._get(section, key)
        if not present:
            return default
        if _is_int(value) and lo <= value <= hi:
            return int(value)
        unit_s = f" ({unit})" if unit else ""
        self.error(
            f"[{section}] {key} must be a whole number between {lo} and {hi}{unit_s}, "
            f"got {_show(value)}{_unquote_hint(key, value) or f'; e.g. {key} = {default}'}"
        )
        return default

    def real(
        self,
        section: str,
        key: str,
        default: float,
        lo: float,
        hi: float,
        *,
        above: bool = False,
        unit: str = "",
    ) -> float:
        """A number in ``[lo, hi]`` (``(lo, hi]`` when ``above``); whole numbers accepted."""
        present, value = self._get(section, key)
        if not present:
            return default
        if _is_int(value) or isinstance(value, float):
            low_ok = value > lo if above else value >= lo
            if low_ok and value <= hi:  # also rejects nan
                return float(value)
        span = f"greater than {lo:g}" if above else f"at least {lo:g}"
        unit_s = f" ({unit})" if unit else ""
        self.error(
            f"[{section}] {key} must be a number {span} and at most {hi:g}{unit_s}, "
            f"got {_show(value)}{_unquote_hint(key, value) or f'; e.g. {key} = {default:g}'}"
        )
        return default

    def flag(self, section: str, key: str, default: bool) -> bool:
        present, value = self._get(section, key)
        if not present:
            return default
        if isinstance(value, bool):
            return value
        self.error(f"[{section}] {key} must be true or false (without quotes), got {_show(value)}")
        return default

    def texts(self, section: str, key: str, example: str) -> tuple[str, ...]:
        present, value = self._get(section, key)
        if not present:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(
                f"[{section}] {key} must be a list of quoted texts, got {_show(value)}; "
                f"e.g. {key} = {example}"
            )
            return ()
        return tuple(v.strip() for v in value)

    def choice(self, section: str, key: str, default: str, options: Sequence[str]) -> str:
        raw = self.text(section, key, default)
        value = raw.lower()
        if value in options:
            return value
        self.error(f"[{section}] {key} must be one of {', '.join(options)}, got {raw!r}")
        return default

    def unknown_keys(self) -> None:
        for section, value in self.doc.items():
            if section not in _SECTIONS:
                close = difflib.get_close_matches(section, _SECTIONS, n=1)
                if isinstance(value, dict):
                    hint = (
                        f"; did you mean [{close[0]}]?"
                        if close
                        else (f"; the sections are {', '.join(f'[{s}]' for s in _SECTIONS)}")
                    )
                    self.error(f"unknown section [{section}]{hint}")
                else:
                    where = self._section_with(section)
                    hint = (
                        f"; it belongs in [{where}]: put it below that heading"
                        if where
                        else "; every setting belongs in a section such as [owner]"
                    )
                    self.error(f"unknown key {section!r} at the top of the file{hint}")
                continue
            if not isinstance(value, dict):
                continue  # reported by table()
            known = self.known.get(section, [])
            for key in value:
                if key in known:
                    continue
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                if close:
                    hint = f"; did you mean {close[0]!r}?"
                else:
                    where = self._section_with(key)
                    hint = (
                        f"; it belongs in [{where}]"
                        if where
                        else f"; see config.example.toml for the keys of [{section}]"
                    )
                self.error(f"unknown key [{section}] {key}{hint}")

    def _section_with(self, key: str) -> str:
        for section, keys in self.known.items():
            if key in keys:
                return section
        return ""


# --------------------------------------------------------------------------- loading


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate ``path``. Raises :class:`SettingsError` (a ConfigError).

    ``env`` supplies ``password_env`` variables and ``HOME`` (default: ``os.environ``).
    """
    env = os.environ if env is None else env
    path = Path(path)
    label = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SettingsError(
            f"{label}: no such config file; run 'mailbot init' to write one (it asks a few "
            f"questions and tests the login), or point {CONFIG_ENV} at your config"
        ) from None
    except IsADirectoryError:
        raise SettingsError(f"{label}: is a directory, not a config file") from None
    except OSError as exc:
        raise SettingsError(
            f"{label}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{label}: is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)
        if "at end of document" in detail:
            hint = "a quote or bracket opened earlier is never closed"
        else:
            hint = "check the quotes, brackets and '=' on that line"
        raise SettingsError(f"{label}: is not valid TOML: {detail}; {hint}") from None

    base = path.absolute().parent
    r = _Reader(doc)
    settings = _build(r, base, env, path.absolute())
    found = len(r.problems)
    r.unknown_keys()  # typos first: they often explain a "missing" key below
    r.problems = r.problems[found:] + r.problems[:found]
    if r.problems:
        if len(r.problems) == 1:
            message = f"{label}: {r.problems[0]}"
        else:
            listed = "\n".join(f"  - {p}" for p in r.problems)
            message = f"{label} has {len(r.problems)} problems:\n{listed}"
        raise SettingsError(message, r.problems)
    assert settings is not None
    return settings


def _build(r: _Reader, base: Path, env: Mapping[str, str], path: Path) -> Settings | None:
    owner = _owner(r)
    main_address = owner.addresses[0] if owner.addresses else ""
    imap = _server(r, "imap", base, env, main_address, {"tls": 993, "starttls": 143, "none": 143})
    smtp = _server(r, "smtp", base, env, main_address, {"tls": 465, "starttls": 587, "none": 25})
    data_raw = r.text("data", "dir", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR
    data = DataSettings(dir=_expand(data_raw, base, env))
    users = [f"[{label}]" for label, srv in (("imap", imap), ("smtp", smtp))
             if srv.auth == "oauth2"]
    oauth2 = _oauth2(r, env, data.dir, users)
    if oauth2 is not None:
        imap = replace(imap, oauth2=oauth2) if imap.auth == "oauth2" else imap
        smtp = replace(smtp, oauth2=oauth2) if smtp.auth == "oauth2" else smtp
    imap_settings = ImapSettings(
        host=imap.host,
        port=imap.port,
        security=imap.security,
        username=imap.username,
        password=imap.password,
        ca_file=imap.ca_file,
        timeout_seconds=imap.timeout_seconds,
        auth=imap.auth,
        oauth2=imap.oauth2,
        inbox=r.text("imap", "inbox", "INBOX") or "INBOX",
        sent=r.text("imap", "sent", ""),
        extra_folders=_folders(r),
    )
    ingest = _ingest(r)
    digest = _digest(r, main_address)
    send = SendSettings(
        undo_seconds=r.integer("send", "undo_seconds", 120, 0, 86400, unit="seconds"),
        sent_wait_seconds=r.integer("send", "sent_wait_seconds", 600, 0, 86400,
                                    unit="seconds"),
    )
    rank = _rank(r)
    drafting = _drafting(r, base, env)
    if r.problems:
        return None
    return Settings(
        owner=owner,
        imap=imap_settings,
        smtp=smtp,
        data=data,
        ingest=ingest,
        digest=digest,
        send=send,
        rank=rank,
        drafting=drafting,
        path=path,
        oauth2=oauth2,
    )


def _owner(r: _Reader) -> OwnerSettings:
    s = "owner"
    name = r.text(s, "name", example='"Olivia Owner"')
    addresses: list[str] = []
    present, value = r._get(s, "addresses")
    if not present:
        r.error(
            "[owner] addresses is missing: list every address you send from, "
            'e.g. addresses = ["olivia@linen.example"]'
        )
    elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        r.error(
            f"[owner] addresses must be a list of quoted addresses, got {_show(value)}; "
            f'e.g. addresses = ["olivia@linen.example"]'
        )
    elif not value:
        r.error(
            "[owner] addresses must list at least one address, "
            'e.g. addresses = ["olivia@linen.example"]'
        )
    else:
        for item in value:
            address = item.strip().lower()
            problem = _address_problem(address)
            if problem:
                r.error(f"[owner] addresses: {item!r} is not usable: {problem}")
            elif address not in addresses:
                addresses.append(address)
    domains: list[str] = []
    for item in r.texts(s, "internal_domains", '["linen.example"]'):
        domain = item.lower().lstrip("@").rstrip(".")
        if not _DOMAIN_RE.match(domain):
            r.error(
                f"[owner] internal_domains: {item!r} is not a domain name; "
                'write just the part after "@", e.g. "linen.example"'
            )
        elif domain not in domains:
            domains.append(domain)
    timezone = r.text(s, "timezone", example='"Europe/Berlin"')
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(timezone, _zone_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ' such as "Europe/Berlin"'
            r.error(
                f"[owner] timezone {timezone!r} is not a known time zone; use an IANA name{hint}"
            )
            timezone = ""
    signature = r.text(s, "signature", name, strip=False).strip("\n") or name
    return OwnerSettings(
        name=name,
        addresses=tuple(addresses),
        internal_domains=tuple(domains),
        timezone=timezone or "UTC",
        signature=signature,
        business=r.text(s, "business", ""),
        tone=r.text(s, "tone", "warm, brief, personal") or "warm, brief, personal",
    )


def _zone_names() -> list[str]:
    try:
        from zoneinfo import available_timezones

        return sorted(available_timezones())
    except Exception:  # pragma: no cover - no tz database at all
        return []


def _server(
    r: _Reader,
    s: str,
    base: Path,
    env: Mapping[str, str],
    main_address: str,
    ports: Mapping[str, int],
) -> ServerSettings:
    host = r.text(s, "host", example=f'"{s}.linen.example"')
    security = cast(Security, r.choice(s, "security", "tls", _SECURITY))
    if security == "none" and host and not _is_loopback(host):
        r.error(
            f'[{s}] security = "none" (no encryption) is allowed only for a loopback host '
            f'such as localhost or 127.0.0.1, not {host!r}: use security = "tls" or "starttls"'
        )
    port = r.integer(s, "port", ports[security], 1, 65535)
    username = r.text(s, "username", "") or main_address
    auth = cast(Auth, r.choice(s, "auth", "password", _AUTHS))
    password = _secret(r, s, env, keyring_entry=f"{username}@{host}")
    if auth == "oauth2" and password.is_set:
        r.error(
            f'[{s}] auth = "oauth2" signs in with a token, not a password: remove the '
            f'password setting, or use auth = "password"'
        )
    ca_raw = r.text(s, "ca_file", "")
    ca_file: Path | None = None
    if ca_raw:
        ca_file = _expand(ca_raw, base, env)
        if not ca_file.is_file():
            r.error(
                f"[{s}] ca_file {str(ca_file)!r} does not exist or is not a file; "
                'fix the path or set ca_file = "" to use the system CAs'
            )
    timeout = r.real(s, "timeout_seconds", 60.0, 0, 3600, above=True, unit="seconds")
    return ServerSettings(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        ca_file=ca_file,
        timeout_seconds=timeout,
        auth=auth,
    )


def _secret(
    r: _Reader, s: str, env: Mapping[str, str], name: str = "password", keyring_entry: str = ""
) -> Secret:
    """One secret from ``NAME``, ``NAME_env``, ``NAME_command`` or ``NAME_keyring = true``."""
    key = f"[{s}]"
    value = r.text(s, name, "", strip=False)
    var = r.text(s, f"{name}_env", "")
    command = r.text(s, f"{name}_command", "")
    in_keyring = r.flag(s, f"{name}_keyring", False)
    given = [
        k
        for k, v in (
            (name, value),
            (f"{name}_env", var),
            (f"{name}_command", command),
            (f"{name}_keyring", in_keyring),
        )
        if v
    ]
    if len(given) > 1:
        r.error(
            f"[{s}] sets {' and '.join(given)}: keep exactly one of {name}, "
            f"{name}_env, {name}_command or {name}_keyring"
        )
        return Secret(key, "none", name=name)
    if var:
        if not _ENV_NAME_RE.match(var):
            r.error(
                f"[{s}] {name}_env must be the name of an environment variable "
                f"(letters, digits, _), got {var!r}; e.g. {name}_env = "
                f'"MAILBOT_{s.upper()}_{name.upper()}"'
            )
            return Secret(key, "none", name=name)
        return Secret(key, "env", var, env.get(var), name=name)
    if command:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            r.error(f"[{s}] {name}_command is not a valid command line ({exc}); check its quotes")
            return Secret(key, "none", name=name)
        if not argv:
            r.error(f'[{s}] {name}_command is empty; give a command such as "pass show mail"')
            return Secret(key, "none", name=name)
        return Secret(key, "command", command, name=name)
    if in_keyring:
        return Secret(key, "keyring", keyring_entry, name=name)
    if value:
        return Secret(key, "value", value=value, name=name)
    return Secret(key, "none", name=name)


GOOGLE_SCOPES = ("https://mail.google.com/",)
MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
_MICROSOFT_BASE = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/"
_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_OAUTH_DOC = "see docs/oauth2.md"


def _oauth2(
    r: _Reader, env: Mapping[str, str], data_dir: Path, users: Sequence[str]
) -> OAuth2Settings | None:
    """The [oauth2] section; ``users`` are the servers with auth = "oauth2"."""
    s = "oauth2"
    if s not in r.doc:
        for label in users:
            r.error(
                f'{label} auth = "oauth2" needs an [oauth2] section with provider and '
                f"client_id (your app's registration; {_OAUTH_DOC})"
            )
        return None
    present, raw_provider = r._get(s, "provider")
    provider: OAuthProvider = "custom"
    if not present:
        r.error(
            '[oauth2] provider is missing: add provider = "google", "microsoft" or "custom"'
        )
    elif not isinstance(raw_provider, str) or raw_provider.strip().lower() not in _PROVIDERS:
        r.error(
            f"[oauth2] provider must be one of {', '.join(_PROVIDERS)}, got {_show(raw_provider)}"
        )
    else:
        provider = cast(OAuthProvider, raw_provider.strip().lower())
    present, _ = r._get(s, "client_id")
    client_id = r.text(s, "client_id", "")
    if not client_id:
        state = "is missing" if not present else "must not be empty"
        r.error(
            f"[oauth2] client_id {state}: register mailbot as an app with your provider "
            f"and copy its client ID here ({_OAUTH_DOC})"
        )
    client_secret = _secret(
        r, s, env, "client_secret", keyring_entry=f"oauth2-client-secret:{client_id}"
    )
    tenant = r.text(s, "tenant", "")
    urls = {k: r.text(s, k, "") for k in ("token_url", "device_url", "auth_url")}
    scopes = r.texts(s, "scopes", '["https://mail.google.com/"]')
    token_store = cast(TokenStore, r.choice(s, "token_store", "auto", _TOKEN_STORES))
    timeout = r.real(s, "timeout_seconds", 30.0, 0, 300, above=True, unit="seconds")

    if provider != "custom":
        for k, v in urls.items():
            if v:
                r.error(
                    f'[oauth2] {k} is used only with provider = "custom"; {provider} has '
                    f"built-in URLs: remove {k}"
                )
    if tenant and provider != "microsoft":
        r.error('[oauth2] tenant is used only with provider = "microsoft": remove it')
    if provider == "microsoft":
        tenant = tenant or "common"
        if not _TENANT_RE.match(tenant):
            r.error(
                f"[oauth2] tenant must be common, organizations, consumers, your tenant ID "
                f'or your domain, got {tenant!r}; e.g. tenant = "common"'
            )
            tenant = "common"
        base = _MICROSOFT_BASE.format(tenant=tenant)
        urls = {"token_url": base + "token", "device_url": base + "devicecode",
                "auth_url": base + "authorize"}
    elif provider == "google":
        urls = {
            "token_url": "https://oauth2.googleapis.com/token",
            "device_url": "https://oauth2.googleapis.com/device/code",
            "auth_url": "https://accounts.google.com/o/oauth2/v2/auth",
        }
    else:
        if not urls["token_url"]:
            r.error(
                '[oauth2] provider = "custom" needs token_url (the token endpoint), e.g. '
                'token_url = "https://login.example.com/oauth2/token"'
            )
        if not urls["device_url"] and not urls["auth_url"]:
            r.error(
                '[oauth2] provider = "custom" needs device_url (device-code sign-in) or '
                "auth_url (browser sign-in), or both, for `mailbot auth`"
            )
        for k, v in urls.items():
            if v and not _url_ok(v):
                r.error(
                    f"[oauth2] {k} must be an https:// URL (http:// only for a loopback host "
                    f"such as 127.0.0.1), got {v!r}"
                )
    if any(not sc or any(c.isspace() for c in sc) for sc in scopes):
        r.error(
            "[oauth2] scopes must be a list of single scopes without spaces, e.g. "
            'scopes = ["https://mail.google.com/"]'
        )
    default_scopes = {"google": GOOGLE_SCOPES, "microsoft": MICROSOFT_SCOPES}.get(provider, ())
    return OAuth2Settings(
        provider=provider,
        client_id=client_id,
        client_secret=client_secret,
        token_url=urls["token_url"],
        device_url=urls["device_url"],
        auth_url=urls["auth_url"],
        scopes=scopes or default_scopes,
        tenant=tenant,
        token_store=token_store,
        timeout_seconds=timeout,
        data_dir=data_dir,
    )


def _url_ok(url: str) -> bool:
    m = re.match(r"^(https?)://(\[[^\]]+\]|[^/:?#\s]+)(?::\d+)?(?:[/?#]\S*)?$", url)
    if not m:
        return False
    return m[1] == "https" or _is_loopback(m[2])


def _folders(r: _Reader) -> tuple[str, ...]:
    folders = r.texts("imap", "extra_folders", '["[Gmail]/All Mail"]')
    if any(not f for f in folders):
        r.error('[imap] extra_folders must not contain an empty name; remove the "" entry')
    return tuple(f for f in folders if f)


def _ingest(r: _Reader) -> IngestSettings:
    s = "ingest"
    return IngestSettings(
        history_days=r.integer(s, "history_days", 730, 1, 36500, unit="days"),
        batch_size=r.integer(s, "batch_size", 500, 1, 10000, unit="messages"),
        idle_renew_seconds=r.integer(s, "idle_renew_seconds", 540, 10, 600, unit="seconds"),
        sent_poll_seconds=r.integer(s, "sent_poll_seconds", 180, 10, 86400, unit="seconds"),
        reconnect_max_seconds=r.integer(s, "reconnect_max_seconds", 300, 1, 86400, unit="seconds"),
        body_bytes=r.integer(s, "body_bytes", 8192, 256, 10_000_000, unit="bytes"),
    )


def _digest(r: _Reader, main_address: str) -> DigestSettings:
    s = "digest"
    time = "07:30"
    present, value = r._get(s, "time")
    if present:
        if isinstance(value, _dt.time) and value.second == 0 and value.tzinfo is None:
            time = f"{value.hour:02d}:{value.minute:02d}"
        else:
            m = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
            if m and int(m[1]) < 24 and int(m[2]) < 60:
                time = f"{int(m[1]):02d}:{m[2]}"
            else:
                r.error(
                    f'[digest] time must be a 24-hour time "HH:MM" between "00:00" and '
                    f'"23:59", got {_show(value)}; e.g. time = "07:30"'
                )
    raw_days = r.text(s, "days", "mon-fri")
    days = re.sub(r"\s+", "", raw_days.lower())
    problem = _valid_days(days)
    if problem:
        r.error(
            f"[digest] days {raw_days!r} is not a list of days: {problem}; use day names "
            'mon..sun, ranges and commas, e.g. days = "mon-fri" or "mon,wed,fri" or "*"'
        )
        days = "mon-fri"
    to = r.text(s, "to", "").lower()
    if to:
        problem = _address_problem(to)
        if problem:
            r.error(f"[digest] to {to!r} is not usable: {problem}")
    return DigestSettings(
        time=time,
        days=days,
        size=r.integer(s, "size", 5, 3, 7, unit="picks"),
        grace_minutes=r.integer(s, "grace_minutes", 180, 0, 1440, unit="minutes"),
        send_when_empty=r.flag(s, "send_when_empty", False),
        to=to or main_address,
    )


def _rank(r: _Reader) -> RankSettings:
    s = "rank"
    d = RankSettings()

    def days(key: str, lo: int = 0) -> int:
        return r.integer(s, key, getattr(d, key), lo, 3650, unit="days")

    def factor(key: str) -> float:
        return r.real(s, key, getattr(d, key), 1, 100)

    rank = RankSettings(
        contact_cooldown_days=days("contact_cooldown_days"),
        no_reason_cooldown_days=days("no_reason_cooldown_days"),
        suggestion_cooldown_days=days("suggestion_cooldown_days"),
        unanswered_min_business_days=days("unanswered_min_business_days"),
        unanswered_max_days=days("unanswered_max_days", 1),
        lapse_factor=factor("lapse_factor"),
        lapse_min_gaps=r.integer(s, "lapse_min_gaps", d.lapse_min_gaps, 1, 100, unit="gaps"),
        gone_after_factor=factor("gone_after_factor"),
        welcome_min_days=days("welcome_min_days"),
        welcome_max_days=days("welcome_max_days", 1),
        quiet_loyal_min_touchpoints=r.integer(
            s,
            "quiet_loyal_min_touchpoints",
            d.quiet_loyal_min_touchpoints,
            1,
            10000,
            unit="touchpoints",
        ),
        quiet_loyal_min_days=days("quiet_loyal_min_days"),
        max_per_reason=r.integer(s, "max_per_reason", d.max_per_reason, 1, 7, unit="picks"),
        ignored_backoff_factor=factor("ignored_backoff_factor"),
    )
    checks: list[tuple[bool, str]] = [
        (
            rank.welcome_min_days > rank.welcome_max_days,
            "[rank] welcome_min_days must not be greater than welcome_max_days "
            f"({rank.welcome_min_days} > {rank.welcome_max_days}); lower the first or raise "
            "the second",
        ),
        (
            rank.unanswered_min_business_days > rank.unanswered_max_days,
            "[rank] unanswered_min_business_days must not be greater than unanswered_max_days "
            f"({rank.unanswered_min_business_days} > {rank.unanswered_max_days})",
        ),
        (
            rank.gone_after_factor <= rank.lapse_factor,
            "[rank] gone_after_factor must be greater than lapse_factor "
            f"({rank.gone_after_factor:g} <= {rank.lapse_factor:g}), or nobody is ever lapsed",
        ),
    ]
    for failed, message in checks:
        if failed:
            r.error(message)
    return rank


def _drafting(r: _Reader, base: Path, env: Mapping[str, str]) -> DraftingSettings:
    s = "drafting"
    engine = cast(Engine, r.choice(s, "engine", "template", _ENGINES))
    prompts_raw = r.text(s, "prompts_dir", "")
    prompts_dir: Path | None = None
    if prompts_raw:
        prompts_dir = _expand(prompts_raw, base, env)
        if not prompts_dir.is_dir():
            r.error(
                f"[drafting] prompts_dir {str(prompts_dir)!r} is not a directory; fix the path "
                'or set prompts_dir = "" to use the bundled prompts'
            )
    base_url = r.text(s, "llm_base_url", "").rstrip("/")
    model = r.text(s, "llm_model", "")
    key_env = r.text(s, "llm_api_key_env", "")
    timeout = r.real(s, "llm_timeout_seconds", 20.0, 0, 600, above=True, unit="seconds")
    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        r.error(
            f"[drafting] llm_base_url must start with http:// or https://, got {base_url!r}; "
            'e.g. llm_base_url = "http://127.0.0.1:11434/v1"'
        )
    if key_env and not _ENV_NAME_RE.match(key_env):
        r.error(
            "[drafting] llm_api_key_env must be the name of an environment variable "
            f'(letters, digits, _), got {key_env!r}; e.g. llm_api_key_env = "OPENAI_API_KEY"'
        )
    if engine == "llm":
        missing = [k for k, v in (("llm_base_url", base_url), ("llm_model", model)) if not v]
        if missing:
            r.error(
                f'[drafting] engine = "llm" needs {" and ".join(missing)}: set '
                + " and ".join(missing)
                + ', or use engine = "template"'
            )
    return DraftingSettings(
        engine=engine,
        prompts_dir=prompts_dir,
        llm_base_url=base_url,
        llm_model=model,
        llm_api_key_env=key_env,
        llm_timeout_seconds=timeout,
    )
