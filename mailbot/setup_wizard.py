"""``mailbot init``: write (or edit) config.toml by asking a few questions, or from flags.

Interactive by default: each question shows its default in brackets and Enter
keeps it; passwords and client secrets are read without echo. ``--yes`` asks
nothing and takes the flags, then the existing file's values, then the
provider's defaults.

Sign-in: a password (usually the provider's app password) or OAuth2
(``auth = "oauth2"`` and an ``[oauth2]`` section; Microsoft 365 and Outlook.com
accept nothing else, Google accepts both). For OAuth2 the wizard writes the
client ID of the owner's registered app and sends the owner to ``mailbot auth``;
it never tries a password login on such an account. A password that is typed or
given with ``--password`` is kept in the system keyring when a usable one exists
(``password_keyring = true``: service ``mailbot``, entry ``<username>@<host>``
for [imap] and for [smtp], what :mod:`mailbot.config` reads), else in the file
with a warning; ``--password-env`` and ``--password-command`` keep it out of
both.

The file is never clobbered: an existing config is read, its values are the
defaults, and only the keys the wizard changes are edited, in place (tomlkit),
so the owner's comments, order, other sections and unknown keys stay as they
were; the previous file is also copied to ``config.toml.bak``. A new file gets
the layout and comments of config.example.toml (:func:`dump_toml`). The result
is written with mode 0600 and must load with
:func:`mailbot.config.load_settings`. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import math
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import DEFAULT_DATA_DIR, KEYRING_SERVICE, Settings, load_settings
from .errors import ConfigError, InputError
from .providers import Provider, Resolver, lookup_mx, recognise

__all__ = ["add_init_arguments", "cmd_init", "dump_toml", "run_init"]

SECURITY = ("tls", "starttls", "none")
AUTHS = ("password", "oauth2")
STORES = ("auto", "keyring", "file")
PASSWORD_KEYS = ("password", "password_env", "password_command", "password_keyring")
CLIENT_SECRET_KEYS = ("client_secret", "client_secret_env", "client_secret_command",
                      "client_secret_keyring")
DEFAULT_PASSWORD_ENV = "MAILBOT_PASSWORD"
DEFAULT_TENANT = "common"
OAUTH_DOC = "docs/oauth2.md"

# Section and key order, and the comments, of config.example.toml (for what the wizard writes).
_ORDER: dict[str, tuple[str, ...]] = {
    "owner": ("name", "addresses", "internal_domains", "timezone", "signature", "business",
              "tone"),
    "imap": ("host", "port", "security", "username", "auth", *PASSWORD_KEYS, "ca_file",
             "timeout_seconds", "inbox", "sent", "extra_folders"),
    "smtp": ("host", "port", "security", "username", "auth", *PASSWORD_KEYS, "ca_file",
             "timeout_seconds"),
    "oauth2": ("provider", "client_id", *CLIENT_SECRET_KEYS, "tenant", "scopes", "token_store",
               "timeout_seconds", "token_url", "device_url", "auth_url"),
    "data": ("dir",),
    "ingest": (), "digest": (), "send": (), "rank": (), "drafting": (),
}
_IN_KEYRING = 'in the system keyring: service "mailbot", entry "<username>@<host>"'
_COMMENTS: dict[tuple[str, str], str] = {
    ("owner", "name"): "used in drafts and the digest",
    ("owner", "addresses"): "every address you send from; the first is the main one",
    ("owner", "timezone"): "IANA name; the digest time is in this zone",
    ("imap", "security"): "tls | starttls | none (none: loopback only)",
    ("imap", "auth"): f"password | oauth2 (then see [oauth2] and {OAUTH_DOC})",
    ("imap", "password"): "in plain text: prefer password_env or password_command",
    ("imap", "password_env"): "read from this environment variable",
    ("imap", "password_command"): "run (no shell) when needed; its first line is the password",
    ("imap", "password_keyring"): _IN_KEYRING,
    ("imap", "ca_file"): 'extra CA bundle, for self-signed servers; "" = system CAs',
    ("imap", "sent"): '"" = find it (SPECIAL-USE \\Sent, then the usual names)',
    ("smtp", "security"): "tls | starttls | none (none: loopback only)",
    ("smtp", "auth"): "password | oauth2",
    ("smtp", "password"): "in plain text: prefer password_env or password_command",
    ("smtp", "password_keyring"): _IN_KEYRING,
    ("smtp", "ca_file"): 'extra CA bundle, for self-signed servers; "" = system CAs',
    ("oauth2", "provider"): "google | microsoft | custom",
    ("oauth2", "client_id"): f"the app you registered ({OAUTH_DOC})",
    ("oauth2", "client_secret_keyring"):
        'in the system keyring: entry "oauth2-client-secret:<client_id>"',
    ("oauth2", "tenant"): "common, organizations, consumers or your tenant ID",
    ("data", "dir"): "database and lock file live here",
}
_HEADER = (
    "# mailbot configuration, written by `mailbot init`.\n"
    "# Run `mailbot init` again to change the answers (your other settings are kept), or\n"
    "# edit this file: config.example.toml describes every setting. Then `mailbot check`.\n"
)


# --------------------------------------------------------------------------- TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_str(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _line(section: str, key: str, value: object) -> str:
    text = f"{_toml_key(key)} = {_toml_value(value)}"
    comment = _COMMENTS.get((section, key))
    if comment:
        text = f"{text.ljust(42)} # {comment}"
    return text


def _emit_table(lines: list[str], name: str, table: Mapping[str, Any], section: str) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
    order = [k for k in _ORDER.get(section, ()) if k in scalars]
    order += [k for k in scalars if k not in order]
    if lines:
        lines.append("")
    lines.append(f"[{name}]")
    for key in order:
        lines.append(_line(section, key, scalars[key]))
    for key, sub in subtables.items():
        _emit_table(lines, f"{name}.{_toml_key(key)}", sub, "")


def dump_toml(doc: Mapping[str, Any], header: str = "") -> str:
    """``doc`` as TOML (str, int, float, bool, dates, lists, tables), sections in config order."""
    lines: list[str] = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.append(_line("", key, value))
    sections = [s for s in _ORDER if isinstance(doc.get(s), dict)]
    sections += [s for s, v in doc.items() if isinstance(v, dict) and s not in sections]
    for s in sections:
        _emit_table(lines, _toml_key(s), doc[s], s)
    return header + "\n" + "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- editing in place


def _edit_in_place(text: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """``text`` (the existing file, which parses to ``old``) edited to hold ``new``.

    Only the keys whose values differ are touched, with tomlkit, so comments, blank lines,
    order and every other key stay as the owner left them; a replaced value keeps its line's
    comment, a new key goes after its predecessor in config order, with the usual comment.
    Returns None when the edit does not give exactly ``new`` (an unusual layout, such as
    dotted keys or inline tables for a section): the caller then writes the file afresh.
    """
    import tomlkit

    try:
        doc: Any = tomlkit.parse(text)
        for name, value in new.items():
            before = old.get(name)
            if before == value:
                continue
            if not isinstance(value, dict):
                doc[name] = value
            elif name not in doc or not isinstance(before, dict):
                doc[name] = _new_table(tomlkit, name, value)
            else:
                _edit_table(tomlkit, doc[name], name, before, value)
        for name in old:
            if name not in new:
                del doc[name]
        result: str = doc.as_string()
        if tomllib.loads(result) == new:
            return result
    except Exception:  # tomlkit refused an unusual layout: write the file afresh
        return None
    return None


def _comment_ws(key: str, value: Any) -> str:
    text = f"{_toml_key(key)} = {value.as_string()}"
    return " " * (max(42 - len(text), 0) + 1)


def _new_item(tomlkit: Any, section: str, key: str, value: object) -> Any:
    item = tomlkit.item(value)
    comment = _COMMENTS.get((section, key))
    if comment:
        item.comment(comment)
        item.trivia.comment_ws = _comment_ws(key, item)
    return item


def _new_table(tomlkit: Any, section: str, values: Mapping[str, Any]) -> Any:
    table = tomlkit.table()
    order = [k for k in _ORDER.get(section, ()) if k in values]
    order += [k for k in values if k not in order]
    for key in order:
        table[key] = _new_item(tomlkit, section, key, values[key])
    return table


def _edit_table(tomlkit: Any, table: Any, section: str, before: Mapping[str, Any],
                after: Mapping[str, Any]) -> None:
    for key in before:
        if key not in after:
            del table[key]
    order = _ORDER.get(section, ())
    for key, value in after.items():
        if key in before and before[key] == value:
            continue
        if key in table:
            was = table[key]
            column = len(f"{key} = {was.as_string()}") + len(was.trivia.comment_ws)
            table[key] = value  # tomlkit keeps the line's comment: keep it where it was
            now = table[key]
            if now.trivia.comment:
                width = len(f"{key} = {now.as_string()}")
                now.trivia.comment_ws = " " * max(column - width, 1)
            continue
        previous = order[:order.index(key)] if key in order else ()
        anchor = next((k for k in reversed(previous) if k in table), None)
        item = _new_item(tomlkit, section, key, value)
        if anchor is None:
            table[key] = item
        else:
            table.value._insert_after(anchor, key, item)


# --------------------------------------------------------------------------- arguments


def add_init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="your email address (the mailbox mailbot reads)")
    p.add_argument("--name", help="your name, as it appears in drafts")
    p.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--auth", choices=AUTHS,
                   help="how mailbot signs in: password, or oauth2 (the only way for Microsoft "
                   f"365 and Outlook.com, possible for Google; see {OAUTH_DOC}). Default: "
                   "what the provider accepts, a password where it takes one")
    p.add_argument("--oauth-client-id", metavar="ID",
                   help=f"OAuth2: the client ID of the app you registered ({OAUTH_DOC}); "
                   "implies --auth oauth2")
    p.add_argument("--oauth-client-secret", metavar="SECRET",
                   help="OAuth2 with Google: the client secret of that app (Google requires "
                   "it; kept like a password, see --store)")
    p.add_argument("--oauth-tenant", metavar="TENANT",
                   help=f"OAuth2 with Microsoft: {DEFAULT_TENANT} (default), organizations, "
                   "consumers, or your tenant ID or domain")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR",
                    help="read the password from this environment variable")
    pw.add_argument("--password-command", metavar="CMD",
                    help='get the password from this command, e.g. "pass show mail"')
    pw.add_argument("--password",
                    help="the password, kept in the system keyring (or the file: see --store)")
    p.add_argument("--store", choices=STORES,
                   help="where a password given with --password or typed is kept: auto "
                   "(default: the system keyring when a usable one exists, else the file, "
                   "with a warning), keyring, or file. With --yes alone, it moves the "
                   "password already configured there")
    p.add_argument("--imap-host")
    p.add_argument("--imap-port", type=int)
    p.add_argument("--imap-security", choices=SECURITY)
    p.add_argument("--smtp-host")
    p.add_argument("--smtp-port", type=int)
    p.add_argument("--smtp-security", choices=SECURITY)
    p.add_argument("--ca-file", help="extra CA certificate for self-signed servers (IMAP and SMTP)")
    p.add_argument("--data-dir", help=f"where the database lives (default {DEFAULT_DATA_DIR})")
    p.add_argument("--no-check", action="store_true", help="do not test the login afterwards")
    p.add_argument("--yes", action="store_true",
                   help="ask nothing: use the flags, the existing file and the provider defaults")


def cmd_init(args: argparse.Namespace) -> int:
    return run_init(args)


# --------------------------------------------------------------------------- the wizard


def _local_timezone() -> str:
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name and _valid_zone(name):
            return "UTC" if name == "Etc/UTC" else name
    return "UTC"


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class _Asker:
    def __init__(self, interactive: bool, input_fn: Callable[[str], str],
                 getpass_fn: Callable[[str], str], out: TextIO) -> None:
        self.interactive = interactive
        self.input = input_fn
        self.getpass = getpass_fn
        self.out = out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, label: str, default: str, check: Callable[[str], str | None] | None = None,
            *, allow_empty: bool = False) -> str:
        if not self.interactive:
            return default
        for _ in range(10):
            self.out.flush()
            try:
                answer = self.input(f"{label} [{default}]: " if default else f"{label}: ")
            except EOFError:
                raise InputError(f"no answer to {label!r} (end of input)") from None
            value = answer.strip() or default
            if not value and not allow_empty:
                self.say("  please give an answer")
                continue
            problem = check(value) if check and value else None
            if problem:
                self.say(f"  {problem}")
                continue
            return value
        raise InputError(f"no usable answer to {label!r}")

    def secret(self, label: str, keep: str | None) -> str:
        """A secret typed without echo; Enter keeps ``keep`` when there is one."""
        prompt = f"{label} (not shown; Enter keeps the current one): " if keep else \
            f"{label} (not shown): "
        for _ in range(5):
            self.out.flush()
            try:
                value = self.getpass(prompt)
            except EOFError:
                raise InputError(f"no {label.lower()} given (end of input)") from None
            if value or keep:
                return value or keep or ""
            self.say(f"  please type the {label.lower()}")
        raise InputError(f"no {label.lower()} given")


class _Keyring:
    """The system keyring, probed on first use by :func:`mailbot.oauth.keyring_backend`."""

    def __init__(self) -> None:
        self._probed = False
        self._backend: Any = None
        self.detail = ""  # the backend's name, or why there is no usable one

    def _probe(self) -> Any:
        if not self._probed:
            from .oauth import keyring_backend

            self._backend, self.detail = keyring_backend()
            self._probed = True
        return self._backend

    @property
    def usable(self) -> bool:
        return self._probe() is not None

    def get(self, entry: str) -> str | None:
        backend = self._probe()
        if backend is None or not entry:
            return None
        try:
            value = backend.get_password(KEYRING_SERVICE, entry)
        except Exception:  # locked, D-Bus trouble: as if there were no entry
            return None
        return value if isinstance(value, str) and value else None

    def put(self, entry: str, value: str) -> str:
        """Store ``value``; returns "" or why it could not."""
        backend = self._probe()
        if backend is None:
            return self.detail
        try:
            backend.set_password(KEYRING_SERVICE, entry, value)
        except Exception as exc:  # keyring backends raise their own errors (locked, D-Bus)
            return f"the system keyring could not store it ({type(exc).__name__})"
        return ""


def _check_address(value: str) -> str | None:
    if not re.match(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$", value):
        return "that does not look like an email address (name@example.com)"
    return None


def _check_port(value: str) -> str | None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        return "a port is a whole number between 1 and 65535"
    return None


def _check_security(value: str) -> str | None:
    return None if value in SECURITY else "answer tls, starttls or none"


def _check_zone(value: str) -> str | None:
    return None if _valid_zone(value) else "not a known time zone; e.g. Europe/Berlin"


def _check_client_id(value: str) -> str | None:
    return "a client ID has no spaces" if any(c.isspace() for c in value) else None


def _check_tenant(value: str) -> str | None:
    if re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$", value):
        return None
    return "answer common, organizations, consumers, or your tenant ID or domain"


def _str(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    return value if isinstance(value, str) and value else None


def _int(table: Mapping[str, Any], key: str) -> int | None:
    value = table.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        value = {}
        doc[name] = value
    return value


def _read_existing(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The existing file's text (None: there is none) and its values."""
    if not path.exists():
        return None, {}
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path} exists but cannot be read as TOML ({exc}); fix or move it, "
            "then run mailbot init again"
        ) from None


def _write(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` with mode 0600; returns the backup's path, if any."""
    backup: Path | None = None
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        shutil.copyfile(path, backup)
        os.chmod(backup, 0o600)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return backup


# --------------------------------------------------------------------------- secrets


def _entry(table: Mapping[str, Any], address: str) -> str:
    """The keyring entry config.py reads for a server: ``<username>@<host>``."""
    username = (_str(table, "username") or address).strip()
    return f"{username}@{(_str(table, 'host') or '').strip()}"


def _secret_kind(table: Mapping[str, Any], name: str) -> str | None:
    """Which of NAME, NAME_env, NAME_command, NAME_keyring the table sets (the first)."""
    for key in (name, f"{name}_env", f"{name}_command"):
        if _str(table, key):
            return key
    return f"{name}_keyring" if table.get(f"{name}_keyring") is True else None


def _known_secret(table: Mapping[str, Any], name: str, entry: str, kr: _Keyring) -> str | None:
    """The secret itself when the file or the keyring holds it (to keep it, or move it)."""
    kind = _secret_kind(table, name)
    if kind == name:
        return _str(table, name)
    if kind == f"{name}_keyring":
        return kr.get(entry)
    return None


class _Placer:
    """Puts a secret where it is kept: the system keyring or the file, per ``--store``."""

    def __init__(self, asker: _Asker, kr: _Keyring, path: Path) -> None:
        self.asker = asker
        self.kr = kr
        self.path = path
        self.stored: list[str] = []  # what went to the keyring, for the summary

    def place(self, name: str, value: str, store: str,
              targets: list[tuple[dict[str, Any], str]], what: str) -> None:
        """Keep ``value`` (the NAME secret of each target table, keyring ``entry``)."""
        why = ""
        if store in ("auto", "keyring"):
            why = "" if self.kr.usable else self.kr.detail
            for entry in dict.fromkeys(e for _, e in targets):
                why = why or self.kr.put(entry, value)
            if not why:
                for table, _ in targets:
                    _set_secret(table, name, f"{name}_keyring", True)
                self.stored.append(what)
                return
            if store == "keyring":
                raise InputError(f"cannot keep the {what} in the system keyring: {why}; use "
                                 "--store file, --password-env or --password-command")
        for table, _ in targets:
            _set_secret(table, name, name, value)
        if name == "password":
            reason = f" ({why})" if why else ""
            print(f"warning: the password is stored in plain text in {self.path} (mode 0600, "
                  f"readable only by you){reason}; prefer the system keyring, "
                  "--password-env or --password-command", file=sys.stderr)
        else:
            self.asker.say(f"note: the {what} is in {self.path}; Google does not treat a "
                           "desktop app's client secret as confidential")


def _set_secret(table: dict[str, Any], name: str, key: str, value: object) -> None:
    for k in (name, f"{name}_env", f"{name}_command", f"{name}_keyring"):
        table.pop(k, None)
    table[key] = value


def _ask_password_source(asker: _Asker, kr: _Keyring, current: str | None,
                         store: str | None) -> str:
    sources = {"password_keyring": "keyring", "password_env": "env",
               "password_command": "command", "password": "file"}
    options = ["keyring", "env", "command", "file"] if kr.usable else ["env", "command", "file"]
    default = "keyring" if kr.usable else "env"
    if current in sources and sources[current] in options and \
            not (current == "password" and kr.usable):  # Enter moves it to the keyring
        default = sources[current]
    if store in ("keyring", "file") and store in options:
        default = store
    asker.say("Where should mailbot get your mail password?")
    if kr.usable:
        asker.say(f"  keyring  the system keyring ({kr.detail}): type it once here, "
                  "it is kept there")
    asker.say("  env      an environment variable that you export before starting mailbot")
    asker.say('  command  a command such as "pass show mail" (its first line is the password)')
    asker.say("  file     config.toml itself (readable only by you, but in plain text)")
    if not kr.usable:
        asker.say(f"  (no keyring: {kr.detail})")
    return asker.ask("Password source", default,
                     lambda v: None if v in options else f"answer {', '.join(options)}")


def _password(args: argparse.Namespace, asker: _Asker, kr: _Keyring, placer: _Placer,
              old_imap: Mapping[str, Any], old_entry: str, address: str,
              servers: tuple[dict[str, Any], dict[str, Any]]) -> bool:
    """Set the password of [imap] and [smtp]; False when none is configured."""
    targets = [(t, _entry(t, address)) for t in servers]
    current = _secret_kind(old_imap, "password")

    def known() -> str | None:
        return _known_secret(old_imap, "password", old_entry, kr)

    def refer(key: str, value: str) -> None:
        for table in servers:
            _set_secret(table, "password", key, value)

    if args.password_env:
        refer("password_env", args.password_env)
    elif args.password_command:
        refer("password_command", args.password_command)
    elif args.password is not None:
        placer.place("password", args.password, args.store or "auto", targets, "password")
    elif asker.interactive:
        source = _ask_password_source(asker, kr, current, args.store)
        keep = _str(old_imap, f"password_{source}") or ""
        if source == "env":
            refer("password_env", asker.ask(
                "Environment variable", keep or DEFAULT_PASSWORD_ENV,
                lambda v: None if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v)
                else "letters, digits and _ only"))
        elif source == "command":
            refer("password_command", asker.ask("Command", keep))
        else:
            value = asker.secret("Password", known())
            placer.place("password", value, source, targets, "password")
    elif current in ("password", "password_keyring"):
        # --yes: the password stays where it is (--store moves it); a keyring entry follows
        # a new username or host
        kept = known()
        store = args.store or ("keyring" if current == "password_keyring" else "file")
        in_place = all(kr.get(e) == kept for _, e in targets) if store == "keyring" and \
            current == "password_keyring" else store == "file" and current == "password"
        if kept is None:
            asker.say("note: the password in the system keyring could not be read; "
                      "run mailbot init again and type it")
        elif not in_place:
            placer.place("password", kept, store, targets, "password")
    return _secret_kind(servers[0], "password") is not None


# --------------------------------------------------------------------------- sign-in


def _choose_auth(args: argparse.Namespace, asker: _Asker, provider: Provider,
                 old_imap: Mapping[str, Any], same_domain: bool, has_oauth2: bool) -> str:
    options = list(provider.logins)
    own_section = has_oauth2 and same_domain and "oauth2" not in options
    if own_section:
        options.append("oauth2")  # the owner's own [oauth2] section (e.g. provider = "custom")
    current = _str(old_imap, "auth") if same_domain else None
    if args.auth:
        auth: str = args.auth
    elif args.oauth_client_id:
        auth = "oauth2"
    else:
        auth = current if current in options else options[0]
        if len(options) > 1 and asker.interactive:
            if own_section:
                asker.say("Sign in with a password, or with OAuth2 as the [oauth2] section of "
                          "the file says:")
                asker.say("  password  your password or an app password (see above)")
                asker.say("  oauth2    OAuth2, with the app in [oauth2]")
            else:
                asker.say(f"{provider.name} accepts a password or OAuth2:")
                asker.say("  password  an app password (see above): the simplest")
                asker.say(f"  oauth2    OAuth2, through an app you register yourself "
                          f"({OAUTH_DOC})")
            auth = asker.ask("Sign in with", auth,
                             lambda v: None if v in AUTHS else "answer password or oauth2")
    if auth == "oauth2" and "oauth2" not in options:
        raise InputError(
            f"mailbot has no OAuth2 settings for {provider.name}: use --auth password, or "
            f'write an [oauth2] section with provider = "custom" by hand ({OAUTH_DOC}) and '
            "run mailbot init again"
        )
    if auth == "password" and provider.oauth2_only:
        print(f"warning: {provider.name} refuses passwords for IMAP and SMTP; the login will "
              "most likely fail (use --auth oauth2)", file=sys.stderr)
    return auth


def _fill_oauth2(args: argparse.Namespace, asker: _Asker, provider: Provider,
                 oa: dict[str, Any], placer: _Placer, kr: _Keyring,
                 old_oa: Mapping[str, Any]) -> None:
    """The [oauth2] section: provider, client ID, tenant (Microsoft), client secret (Google)."""
    preset = provider.oauth2_provider
    if preset is not None and _str(oa, "provider") in (None, "google", "microsoft") and \
            _str(oa, "provider") != preset:
        # a new section, or another provider's: start afresh, keeping the owner's tuning
        for key in ("provider", "client_id", "tenant", "scopes", "token_url", "device_url",
                    "auth_url", *CLIENT_SECRET_KEYS):
            oa.pop(key, None)
        oa["provider"] = preset
    kind = _str(oa, "provider") or "custom"
    if args.oauth_tenant and kind != "microsoft":
        raise InputError("--oauth-tenant is for Microsoft only")
    if args.oauth_client_secret and kind == "microsoft":
        raise InputError("--oauth-client-secret: Microsoft apps for mailbot are public "
                         f"clients, without a secret ({OAUTH_DOC})")
    where = {"microsoft": "'1b. Microsoft Entra'", "google": "'1a. Google Cloud Console'"}
    old_id = _str(oa, "client_id") or ""
    if not args.oauth_client_id and not old_id:
        if not asker.interactive:
            raise InputError(f"give --oauth-client-id: the client ID of the app you registered "
                             f"with {kind} ({OAUTH_DOC})")
        asker.say(f"Register mailbot as an app with {kind.title()} first, once: {OAUTH_DOC}, "
                  f"section {where.get(kind, '1')} says how (about ten minutes).")
    client_id = (args.oauth_client_id or asker.ask("Client ID of your app", old_id,
                                                   _check_client_id)).strip()
    problem = _check_client_id(client_id)
    if problem:
        raise InputError(f"--oauth-client-id {client_id!r}: {problem}")
    oa["client_id"] = client_id
    if kind == "microsoft":
        tenant = args.oauth_tenant or asker.ask(
            "Tenant (common, organizations, consumers, or your tenant ID)",
            _str(oa, "tenant") or DEFAULT_TENANT, _check_tenant)
        problem = _check_tenant(tenant)
        if problem:
            raise InputError(f"--oauth-tenant {tenant!r}: {problem}")
        oa["tenant"] = tenant
    if kind != "google":
        return
    # Google refuses a desktop app's token requests without its client secret.
    entry = f"oauth2-client-secret:{client_id}"
    old_entry = f"oauth2-client-secret:{_str(old_oa, 'client_id') or ''}"
    current = _secret_kind(oa, "client_secret")
    known = _known_secret(old_oa, "client_secret", old_entry, kr) \
        if _str(old_oa, "provider") == "google" else None
    if args.oauth_client_secret:
        value: str | None = args.oauth_client_secret
    elif asker.interactive and current in (None, "client_secret", "client_secret_keyring"):
        value = asker.secret("Client secret", known)
    elif current is None:
        raise InputError("Google needs the client secret of your app too: give "
                         f"--oauth-client-secret ({OAUTH_DOC})")
    else:
        value = known if current == "client_secret_keyring" and entry != old_entry else None
    if value is not None:
        store = args.store or ("file" if current == "client_secret" and not
                               asker.interactive else "auto")
        placer.place("client_secret", value, store, [(oa, entry)], "client secret")


def _has_sign_in(settings: Settings) -> bool:
    """Whether ``mailbot auth`` has stored a refresh token for the IMAP account."""
    from . import oauth

    try:
        source = oauth.token_source(settings.imap)
        return source.store.get(source.key) is not None
    except Exception:  # no usable store: as if not signed in
        return False


# --------------------------------------------------------------------------- the wizard


def run_init(
    args: argparse.Namespace,
    *,
    resolver: Resolver | None = None,
    input_fn: Callable[[str], str] = input,
    getpass_fn: Callable[[str], str] = getpass.getpass,
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """The wizard; returns the exit status (0, or 1 when a check failed or the file does not
    load)."""
    out = sys.stdout if out is None else out
    asker = _Asker(not args.yes, input_fn, getpass_fn, out)
    path = Path(args.config)
    old_text, old = _read_existing(path)
    doc: dict[str, Any] = _copy(old)
    owner, imap, smtp, data = (_section(doc, s) for s in ("owner", "imap", "smtp", "data"))
    kr = _Keyring()
    placer = _Placer(asker, kr, path)

    if old_text is not None:
        asker.say(f"Editing {path}: its values are the defaults; the rest of it, comments "
                  "too, is kept.")
    else:
        asker.say(f"Writing a new {path}. Press Enter to keep the value in [brackets].")

    # --- who ----------------------------------------------------------------
    addresses = owner.get("addresses")
    old_address = addresses[0] if isinstance(addresses, list) and addresses and \
        isinstance(addresses[0], str) else ""
    old_imap: dict[str, Any] = _copy(imap)
    old_entry = _entry(old_imap, old_address)
    address = args.address or asker.ask("Your email address", old_address, _check_address)
    if not address:
        raise InputError("give your email address with --address (there is none in the file)")
    problem = _check_address(address)
    if problem:
        raise InputError(f"--address {address!r}: {problem}")
    address = address.strip().lower()
    others = addresses[1:] if isinstance(addresses, list) else []
    owner["addresses"] = [address] + [a for a in others if a != address]
    default_name = _str(owner, "name") or address.split("@")[0].replace(".", " ").title()
    owner["name"] = args.name or asker.ask("Your name", default_name)
    zone = args.timezone or asker.ask("Your time zone",
                                      _str(owner, "timezone") or _local_timezone(), _check_zone)
    if not _valid_zone(zone):
        raise InputError(f"--timezone {zone!r} is not a known time zone; e.g. Europe/Berlin")
    owner["timezone"] = zone

    # --- provider -----------------------------------------------------------
    domain = address.rpartition("@")[2]
    provider = recognise(address, lookup_mx(domain, resolver))
    # The file's servers are the defaults only while the address stays on the same domain;
    # a new domain means a new provider, whose settings replace them.
    same_domain = bool(old_address) and old_address.lower().rpartition("@")[2] == domain
    asker.say(f"Provider: {provider.name} (IMAP {provider.imap_host}:{provider.imap_port} "
              f"{provider.imap_security}, SMTP {provider.smtp_host}:{provider.smtp_port} "
              f"{provider.smtp_security})")
    asker.say(provider.help)

    # --- servers ------------------------------------------------------------
    for label, table, host_flag, port_flag, sec_flag, p_host, p_port, p_sec in (
        ("IMAP", imap, args.imap_host, args.imap_port, args.imap_security,
         provider.imap_host, provider.imap_port, provider.imap_security),
        ("SMTP", smtp, args.smtp_host, args.smtp_port, args.smtp_security,
         provider.smtp_host, provider.smtp_port, provider.smtp_security),
    ):
        if not same_domain:
            for key in ("host", "port", "security"):
                table.pop(key, None)
        table["host"] = host_flag or asker.ask(f"{label} server", _str(table, "host") or p_host)
        security = sec_flag or asker.ask(f"{label} security (tls, starttls, none)",
                                         _str(table, "security") or p_sec, _check_security)
        table["security"] = security
        if port_flag is not None:
            port = port_flag
        else:
            default_port = _int(table, "port") or (
                p_port if security == p_sec else _standard_port(label, security))
            port = int(asker.ask(f"{label} port", str(default_port), _check_port))
        if not 1 <= port <= 65535:
            raise InputError(f"--{label.lower()}-port must be between 1 and 65535, got {port}")
        table["port"] = port
        old_user = _str(table, "username")
        if not old_user or old_user.lower() == old_address.lower():
            table["username"] = address

    if not _str(imap, "sent") or not same_domain:
        imap["sent"] = provider.sent_folder

    # One CA file for both servers; kept as written (relative to the file) unless a new one
    # is given, and a server's own ca_file stays when the owner keeps the default.
    own_ca = [_str(table, "ca_file") or "" for table in (imap, smtp)]
    default_ca = own_ca[0] or own_ca[1]
    if args.ca_file is not None:
        ca = args.ca_file
    else:
        ca = asker.ask("CA certificate file, for a self-signed server (Enter: none)",
                       default_ca, allow_empty=True)
    kept = ca == default_ca and args.ca_file is None
    if not kept:
        ca = str(Path(ca).expanduser().absolute()) if ca else ""
    for table, own in zip((imap, smtp), own_ca, strict=True):
        table["ca_file"] = own if kept and own else ca

    data["dir"] = args.data_dir or asker.ask("Data directory",
                                             _str(data, "dir") or DEFAULT_DATA_DIR)

    # --- sign-in ------------------------------------------------------------
    old_oa: dict[str, Any] = old["oauth2"] if isinstance(old.get("oauth2"), dict) else {}
    auth = _choose_auth(args, asker, provider, old_imap, same_domain, bool(old_oa))
    for table in (imap, smtp):
        if auth == "oauth2" or "auth" in table or old_text is None:
            table["auth"] = auth
    has_secret = True
    if auth == "oauth2":
        for table in (imap, smtp):
            for key in PASSWORD_KEYS:
                table.pop(key, None)
        _fill_oauth2(args, asker, provider, _section(doc, "oauth2"), placer, kr, old_oa)
    else:
        if args.oauth_client_id or args.oauth_tenant or args.oauth_client_secret:
            raise InputError("the --oauth-* flags are for --auth oauth2")
        has_secret = _password(args, asker, kr, placer, old_imap, old_entry, address,
                               (imap, smtp))

    # --- write --------------------------------------------------------------
    if not has_secret:
        asker.say("note: no password is configured yet; run mailbot init again, or add "
                  "password_keyring, password_env or password_command to [imap] and [smtp]")
    for what in placer.stored:
        asker.say(f"stored the {what} in the system keyring ({kr.detail})")
    if doc == old and old_text is not None:
        asker.say(f"{path}: nothing changed")
    else:
        text = None if old_text is None else _edit_in_place(old_text, old, doc)
        if old_text is not None and text is None:
            asker.say(f"note: {path} could not be edited in place, so it is written afresh: "
                      "your comments are only in the backup")
        backup = _write(path, text or dump_toml(doc, _HEADER))
        asker.say(f"wrote {path} (mode 0600)" + (f"; the previous file is {backup}"
                                                  if backup else ""))
        if backup and _plain_secrets(old) - _plain_secrets(doc):
            asker.say(f"note: {backup} still holds a secret in plain text that is no longer "
                      "in the file; delete the backup once you no longer need it")
    os.chmod(path, 0o600)
    if provider.files_sent_itself:
        asker.say(f"{provider.name} files the mail mailbot sends in Sent by itself; "
                  "mailbot notices that and does not add a second copy.")

    try:
        settings = load_settings(path, env)
    except ConfigError as exc:
        asker.say(f"the file is written, but it does not load yet: {exc}")
        asker.say("fix it by hand or run mailbot init again")
        return 1
    if auth == "oauth2" and (args.no_check or not _has_sign_in(settings)):
        oa = settings.oauth2
        loopback = " --loopback" if oa is not None and oa.provider == "google" else ""
        asker.say(f"next: mailbot auth{loopback} to sign in as {settings.imap.username}; it "
                  "stores the sign-in and tests the IMAP and SMTP login. Then mailbot run")
        if loopback:
            asker.say("(Google allows mail access only with the browser sign-in, so "
                      "--loopback; see docs/oauth2.md for a server without a browser)")
        return 0
    if args.no_check:
        asker.say("next: mailbot check, then mailbot run")
        return 0
    from .check import run_checks

    asker.say("testing the setup (mailbot check):")
    ok = run_checks(settings, lambda step: asker.say(step.line()))
    if ok:
        asker.say("all checks passed. Next: mailbot run (or mailbot install-service)")
        return 0
    asker.say(f"some checks failed (see the FAIL lines above); {path} is written all the same: "
              "fix what they say and run mailbot check, or mailbot init again")
    if auth == "password" and provider.oauth2_only:
        asker.say("")
        asker.say(f"IMPORTANT: {provider.help}")
    return 1


def _plain_secrets(doc: Mapping[str, Any]) -> set[str]:
    found = set()
    for section, key in (("imap", "password"), ("smtp", "password"),
                         ("oauth2", "client_secret")):
        table = doc.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, str) and value:
            found.add(value)
    return found


def _standard_port(label: str, security: str) -> int:
    if label == "IMAP":
        return 993 if security == "tls" else 143
    return {"tls": 465, "starttls": 587}.get(security, 25)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
