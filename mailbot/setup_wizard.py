"""``mailbot init``: write (or edit) config.toml by asking a few questions, or from flags.

Interactive by default: each question shows its default in brackets and Enter
keeps it; the password is read without echo. ``--yes`` asks nothing and takes
the flags, then the existing file's values, then the provider's defaults.

The file is never clobbered: an existing config is read, its values are the
defaults, only the keys the wizard knows are changed, every other section and
key is kept, and the previous file is copied to ``config.toml.bak``. The result
is written with mode 0600 and must load with :func:`mailbot.config.load_settings`.
Comments the owner wrote by hand are not kept in the new file (they are in the
backup). The secret is never printed.
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

from .config import DEFAULT_DATA_DIR, load_settings
from .errors import ConfigError, InputError
from .providers import Provider, Resolver, lookup_mx, recognise

__all__ = ["add_init_arguments", "cmd_init", "dump_toml", "run_init"]

SECURITY = ("tls", "starttls", "none")
PASSWORD_KEYS = ("password", "password_env", "password_command")
DEFAULT_PASSWORD_ENV = "MAILBOT_PASSWORD"

# Section and key order, and the comments, of config.example.toml (for what the wizard writes).
_ORDER: dict[str, tuple[str, ...]] = {
    "owner": ("name", "addresses", "internal_domains", "timezone", "signature", "business",
              "tone"),
    "imap": ("host", "port", "security", "username", *PASSWORD_KEYS, "ca_file",
             "timeout_seconds", "inbox", "sent", "extra_folders"),
    "smtp": ("host", "port", "security", "username", *PASSWORD_KEYS, "ca_file",
             "timeout_seconds"),
    "data": ("dir",),
    "ingest": (), "digest": (), "send": (), "rank": (), "drafting": (),
}
_COMMENTS: dict[tuple[str, str], str] = {
    ("owner", "name"): "used in drafts and the digest",
    ("owner", "addresses"): "every address you send from; the first is the main one",
    ("owner", "timezone"): "IANA name; the digest time is in this zone",
    ("imap", "security"): "tls | starttls | none (none: loopback only)",
    ("imap", "password"): "in plain text: prefer password_env or password_command",
    ("imap", "password_env"): "read from this environment variable",
    ("imap", "password_command"): "run (no shell) when needed; its first line is the password",
    ("imap", "ca_file"): 'extra CA bundle, for self-signed servers; "" = system CAs',
    ("imap", "sent"): '"" = find it (SPECIAL-USE \\Sent, then the usual names)',
    ("smtp", "security"): "tls | starttls | none (none: loopback only)",
    ("smtp", "password"): "in plain text: prefer password_env or password_command",
    ("smtp", "ca_file"): 'extra CA bundle, for self-signed servers; "" = system CAs',
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


# --------------------------------------------------------------------------- arguments


def add_init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="your email address (the mailbox mailbot reads)")
    p.add_argument("--name", help="your name, as it appears in drafts")
    p.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR",
                    help="read the password from this environment variable")
    pw.add_argument("--password-command", metavar="CMD",
                    help='get the password from this command, e.g. "pass show mail"')
    pw.add_argument("--password", help="store the password in the config file (not advised)")
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


def _read_existing(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
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


def _current_secret(imap: Mapping[str, Any]) -> tuple[str, str] | None:
    for key in PASSWORD_KEYS:
        value = imap.get(key)
        if isinstance(value, str) and value:
            return key, value
    return None


def _ask_secret(asker: _Asker, current: tuple[str, str] | None) -> tuple[str, str] | None:
    kinds = {"1": "password_env", "2": "password_command", "3": "password"}
    default = {v: k for k, v in kinds.items()}.get(current[0], "1") if current else "1"
    asker.say("How should mailbot get your mail password? (there is no system keyring here)")
    asker.say("  1. from an environment variable (you export it before starting mailbot)")
    asker.say('  2. from a command, e.g. "pass show mail" (its first line is the password)')
    asker.say("  3. stored in config.toml (readable only by you, but in plain text)")
    choice = asker.ask("Choice", default,
                       lambda v: None if v in kinds else "answer 1, 2 or 3")
    kind = kinds[choice]
    keep = current[1] if current and current[0] == kind else ""
    if kind == "password_env":
        var = asker.ask("Environment variable", keep or DEFAULT_PASSWORD_ENV,
                        lambda v: None if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v)
                        else "letters, digits and _ only")
        return kind, var
    if kind == "password_command":
        return kind, asker.ask("Command", keep)
    prompt = "Password (not shown; Enter keeps the current one): " if keep else \
        "Password (not shown): "
    for _ in range(5):
        try:
            value = asker.getpass(prompt)
        except EOFError:
            raise InputError("no password given (end of input)") from None
        if value or keep:
            return kind, value or keep
        asker.say("  please type the password")
    raise InputError("no password given")


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
    old = _read_existing(path)
    doc: dict[str, Any] = _copy(old)
    owner, imap, smtp, data = (_section(doc, s) for s in ("owner", "imap", "smtp", "data"))

    if old:
        asker.say(f"Editing {path}: its values are the defaults; the rest of it is kept.")
    else:
        asker.say(f"Writing a new {path}. Press Enter to keep the value in [brackets].")

    # --- who ----------------------------------------------------------------
    addresses = owner.get("addresses")
    old_address = addresses[0] if isinstance(addresses, list) and addresses and \
        isinstance(addresses[0], str) else ""
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
    if provider.oauth2_only:
        _oauth_warning(asker, provider)
    else:
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

    if args.ca_file is not None:
        ca = args.ca_file
    else:
        ca = asker.ask("CA certificate file, for a self-signed server (Enter: none)",
                       _str(imap, "ca_file") or "", allow_empty=True)
    ca = str(Path(ca).expanduser().absolute()) if ca else ""
    imap["ca_file"] = ca
    smtp["ca_file"] = ca

    data["dir"] = args.data_dir or asker.ask("Data directory",
                                             _str(data, "dir") or DEFAULT_DATA_DIR)

    # --- the secret ---------------------------------------------------------
    secret: tuple[str, str] | None
    if args.password_env:
        secret = ("password_env", args.password_env)
    elif args.password_command:
        secret = ("password_command", args.password_command)
    elif args.password is not None:
        secret = ("password", args.password)
    elif asker.interactive:
        secret = _ask_secret(asker, _current_secret(imap))
    else:
        secret = _current_secret(imap)
    if secret is not None:
        for table in (imap, smtp):
            for key in PASSWORD_KEYS:
                table.pop(key, None)
            table[secret[0]] = secret[1]

    # --- write --------------------------------------------------------------
    if secret is None:
        asker.say("note: no password is configured yet; add password_env or password_command "
                  "to [imap] and [smtp], or run mailbot init again")
    elif secret[0] == "password":
        print(f"warning: the password is stored in plain text in {path} (mode 0600, readable "
              "only by you); prefer --password-env or --password-command", file=sys.stderr)
    if doc == old:
        asker.say(f"{path}: nothing changed")
    else:
        backup = _write(path, dump_toml(doc, _HEADER))
        asker.say(f"wrote {path} (mode 0600)" + (f"; the previous file is {backup}"
                                                  if backup else ""))
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
    if provider.oauth2_only:
        _oauth_warning(asker, provider)
    return 1


def _standard_port(label: str, security: str) -> int:
    if label == "IMAP":
        return 993 if security == "tls" else 143
    return {"tls": 465, "starttls": 587}.get(security, 25)


def _oauth_warning(asker: _Asker, provider: Provider) -> None:
    asker.say("")
    asker.say(f"IMPORTANT: {provider.help}")
    asker.say("")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
