"""Command line: setup and inspection. The owner's mail client is the real UI."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import mailbox
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings, default_config_path, load_settings
from .errors import ConfigError, InputError, MailbotError
from .models import ContactStatus, ContactSummary
from .store import Store

log = logging.getLogger("mailbot")


# --------------------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(verbose: int, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                              "%Y-%m-%d %H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else
                  logging.WARNING)
    # third-party chatter stays at WARNING unless -vv
    for noisy in ("imapclient", "apscheduler", "aiosmtplib", "mailparser", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


# --------------------------------------------------------------------------- helpers


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config))


def _fmt_date(d: datetime | None) -> str:
    return d.strftime("%Y-%m-%d") if d else "-"


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def summary_json(s: ContactSummary) -> dict[str, Any]:
    return {
        "address": s.address,
        "name": s.name,
        "status": s.status.value,
        "first_seen": _iso(s.first_seen),
        "last_inbound": _iso(s.last_inbound),
        "last_outbound": _iso(s.last_outbound),
        "touchpoints": s.touchpoints,
        "needs_reply": s.needs_reply,
    }


def format_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def customers_table(rows: Sequence[ContactSummary]) -> str:
    return format_table(
        [
            (s.name or "-", s.address, s.status.value, _fmt_date(s.first_seen),
             _fmt_date(s.last_inbound), _fmt_date(s.last_outbound), str(s.touchpoints),
             "yes" if s.needs_reply else "")
            for s in rows
        ],
        ("NAME", "ADDRESS", "STATUS", "FIRST SEEN", "LAST IN", "LAST OUT", "TOUCHPOINTS",
         "NEEDS REPLY"),
    )


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    if not Path(args.config).exists() and not args.config_given:
        print(
            f"No config at {args.config}: running the bundled demo instead.\n"
            "To watch your own mailbox: 'mailbot init' (it asks a few questions, writes "
            "config.toml and tests the login).\n",
            file=sys.stderr,
        )
        return cmd_demo(args)
    from .daemon import Daemon

    settings = _load(args)
    with Store(settings.data.dir) as store:
        daemon = Daemon(settings, store)
        daemon.install_signal_handlers()
        log.info("mailbot %s starting (data in %s)", __version__, settings.data.dir)
        status = daemon.run(once=args.once)
        log.info("stopped; %d touchpoints stored", store.touchpoint_count())
        return status


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_checks

    settings = _load(args)
    print(f"config {args.config}: ok")
    ok = run_checks(settings, lambda step: print(step.line(), flush=True))
    print("all checks passed" if ok else "some checks failed: see the FAIL lines above")
    return 0 if ok else 1


def cmd_auth(args: argparse.Namespace) -> int:
    """Sign the OAuth2 accounts in (device code, or --loopback), then test both logins."""
    from .check import run_logins
    from .oauth import sign_in

    settings = _load(args)
    sign_in(settings, lambda line: print(line, flush=True), loopback=args.loopback)
    ok = run_logins(settings, lambda step: print(step.line(), flush=True))
    print("signed in; mailbot can now log in" if ok else
          "signed in, but a login failed: see the FAIL lines above")
    return 0 if ok else 1


def iter_mailbox(path: Path) -> Iterator[bytes]:
    """Raw messages of an mbox file or a Maildir directory."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise InputError(f"{path} is a directory but not a Maildir (no cur/ or new/)")
        md = mailbox.Maildir(str(path), factory=None, create=False)
        for key in md.iterkeys():
            yield md.get_bytes(key)
        return
    if not path.exists():
        raise InputError(f"{path} does not exist")
    with path.open("rb") as fh:
        head = fh.read(5)
    if head != b"From ":
        raise InputError(f"{path} is not an mbox file (it does not start with 'From ')")
    mb = mailbox.mbox(str(path), factory=None, create=False)
    for key in mb.iterkeys():
        yield mb.get_bytes(key)


def import_messages(store: Store, settings: Settings, messages: Iterator[bytes],
                    label: str) -> tuple[int, int]:
    """Run raw messages through the pipeline; returns (messages, new touchpoints)."""
    from .daemon import identity_of
    from .ingest import ingest_parsed
    from .parse import parse_message

    identity = identity_of(settings)
    now = datetime.now(UTC)
    count = added = 0
    started = last = time.monotonic()
    for raw in messages:
        msg = parse_message(raw)
        _verdict, n = ingest_parsed(store, msg, identity, now, folder=label)
        count += 1
        added += n
        if count % 1000 == 0:
            store.commit()
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            log.info("%s: %d messages read (%.0f/s)", label, count,
                     count / (last - started))
    store.commit()
    return count, added


def cmd_import(args: argparse.Namespace) -> int:
    settings = _load(args)
    path = Path(args.path).expanduser()
    with Store(settings.data.dir) as store:
        count, added = import_messages(store, settings, iter_mailbox(path), f"import:{path.name}")
        print(f"{path}: {count} messages read, {added} new touchpoints "
              f"({store.touchpoint_count()} in all)")
    return 0


def cmd_import_customers(args: argparse.Namespace) -> int:
    from .ingest import contact_import_rows

    settings = _load(args)
    path = Path(args.file).expanduser()
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in reader.fieldnames or []]
            if "email" not in fields:
                raise InputError(
                    f"{path}: the first line must name the columns, with at least 'email' "
                    f"(found: {', '.join(fields) or 'nothing'})"
                )
            rows = list(reader)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    with Store(settings.data.dir) as store:
        contacts, problems = contact_import_rows(rows, store.contacts())
        for p in problems:
            print(f"skipped {p}", file=sys.stderr)
        for c in contacts:
            store.upsert_contact(c)
        store.commit()
    print(f"{path}: {len(contacts)} customers imported, {len(problems)} lines skipped")
    return 0


def _open_readonly(settings: Settings) -> Store:
    return Store(settings.data.dir, readonly=True)


def cmd_customers(args: argparse.Namespace) -> int:
    settings = _load(args)
    store = _open_readonly(settings)
    rows = store.summaries()
    if args.status:
        rows = [r for r in rows if r.status.value == args.status]
    rows.sort(key=lambda r: (r.last_inbound or r.last_outbound or r.first_seen or
                             datetime.min.replace(tzinfo=UTC)), reverse=True)
    if args.json:
        print(json.dumps([summary_json(r) for r in rows], indent=2, ensure_ascii=False))
    else:
        print(customers_table(rows) if rows else "no customers yet")
    return 0


def cmd_customer(args: argparse.Namespace) -> int:
    settings = _load(args)
    store = _open_readonly(settings)
    address = args.address.strip().lower()
    summary = store.summary(address)
    decision = store.decision(address)
    if summary is None and decision is None:
        print(f"{address}: not known to mailbot", file=sys.stderr)
        return 1
    tps = store.touchpoints_for(address)
    contact = store.contact(address)
    if args.json:
        out: dict[str, Any] = summary_json(summary) if summary else {"address": address}
        out["status_reason"] = contact.status_reason if contact else ""
        out["timeline"] = [
            {"date": t.date.isoformat(), "direction": t.direction.value, "subject": t.subject,
             "snippet": t.snippet, "needs_reply": t.needs_reply, "message_id": t.message_id,
             "reason": t.reason}
            for t in tps
        ]
        if decision:
            out["not_customer_mail"] = {k: decision[k] for k in
                                        ("category", "reason", "count") if k in decision}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    if summary:
        print(f"{summary.name or address} <{address}>  status: {summary.status.value}"
              + (f" ({contact.status_reason})" if contact and contact.status_reason else ""))
        print(f"first seen {_fmt_date(summary.first_seen)}, {summary.touchpoints} touchpoints"
              + (", needs a reply" if summary.needs_reply else ""))
        for t in tps:
            arrow = "<-" if t.direction.value == "in" else "->"
            flag = " [needs reply]" if t.needs_reply else ""
            print(f"  {t.date:%Y-%m-%d %H:%M} {arrow} {t.subject}{flag}")
            if t.snippet:
                print(f"      {t.snippet}")
    if decision:
        print(f"mail from {address} is not customer mail: {decision.get('category')} "
              f"({decision.get('reason')}; {decision.get('count')} messages)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_messages, demo_settings

    if not args.verbose:  # the demo's output is the point; its INFO log lines are noise
        logging.getLogger("mailbot").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mailbot-demo-") as tmp:
        settings = demo_settings(Path(tmp))
        with Store(settings.data.dir) as store:
            count, added = import_messages(store, settings, demo_messages(), "demo")
            print(f"Demo mailbox of {settings.owner.name}: {count} messages, "
                  f"{added} customer touchpoints.\n")
            rows = sorted(store.summaries(), key=lambda r: r.touchpoints, reverse=True)
            print(customers_table(rows))
            _demo_extra(settings, store)
    return 0


def _demo_extra(settings: Settings, store: Store) -> None:
    print("\nThe morning email mailbot would send today:\n")
    print(preview_text(store, settings, datetime.now(UTC)))


def _plain(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if isinstance(part, EmailMessage) else ""


def preview_text(store: Store, settings: Settings, now: datetime) -> str:
    """The digest and its drafts as plain text, built exactly as the daemon would."""
    from .morning import compose, make_drafter

    composed = compose(store, settings, now, make_drafter(settings))
    out = [f"Subject: {composed.digest['Subject']}", "", _plain(composed.digest)]
    for d in composed.drafts:
        out += ["-" * 72, f"Subject: {d.message['Subject']}", "", _plain(d.message)]
    return "\n".join(out)


def parse_as_of(value: str, settings: Settings) -> datetime:
    """``--as-of``: a date (at the digest time, owner's zone) or an ISO date-time."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d")
            local = day.replace(hour=settings.digest.hour, minute=settings.digest.minute,
                                tzinfo=settings.owner.tz)
            return local.astimezone(UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--as-of {value!r}: use YYYY-MM-DD or an ISO date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=settings.owner.tz)
    return when.astimezone(UTC)


def cmd_digest(args: argparse.Namespace) -> int:
    settings = _load(args)
    now = parse_as_of(args.as_of, settings) if args.as_of else datetime.now(UTC)
    if args.preview:
        store = _open_readonly(settings)
        print(preview_text(store, settings, now))
        return 0
    from .daemon import Daemon

    with Store(settings.data.dir) as store:
        from . import morning

        day = now.astimezone(settings.owner.tz).date()
        mid = morning.run_digest(store, settings, now, morning.make_drafter(settings), day)
        Daemon(settings, store).flush_outbox_once()
        print(f"digest for {day}: " + ("queued and sent" if mid else "already done or empty"))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """Show what mailbot has sent or is trying to send; ``--retry-now`` sends what waits."""
    from . import outbox

    settings = _load(args)
    if args.retry_now:
        from .daemon import Daemon

        with Store(settings.data.dir) as store:
            outbox.retry_now(store, datetime.now(UTC))
            Daemon(settings, store).flush_outbox_once()
            items = store.records("outbox")
    else:
        items = _open_readonly(settings).records("outbox")
    rows = [(i["created"][:16].replace("T", " "), i["kind"], i["state"], str(i["attempts"]),
             i.get("detail", "")[:70]) for i in sorted(items, key=lambda i: i["created"])]
    print(format_table(rows, ("CREATED (UTC)", "KIND", "STATE", "TRIES", "DETAIL"))
          if rows else "the outbox is empty")
    return 0


def status_report(settings: Settings, now: datetime) -> dict[str, Any]:
    """What ``mailbot status`` shows: the heartbeat, read with the database (read-only)."""
    from . import health, outbox

    data_dir = settings.data.dir
    hb = health.read_heartbeat(data_dir / health.HEARTBEAT_NAME)
    alive = bool(hb) and health.pid_alive(int((hb or {}).get("pid") or 0))
    running, why = health.daemon_state(hb, now, alive)
    out: dict[str, Any] = {
        "running": running, "daemon": why, "data_dir": str(data_dir),
        "heartbeat": hb.get("updated") if hb else None,
        "last_sync": dict((hb or {}).get("last_sync") or {}),
        "last_idle_activity": (hb or {}).get("last_idle_activity"),
        "last_connected": (hb or {}).get("last_connected"),
        "last_digest": (hb or {}).get("last_digest"),
        "alerts": list((hb or {}).get("alerts") or []),
        "errors_24h": health.recent_errors(hb, now),
        "database": None, "database_bytes": None, "outbox": {},
        "alerts_not_emailed": {}, "last_digest_sent": None, "last_digest_problem": None,
    }
    try:
        store = _open_readonly(settings)
    except MailbotError as exc:
        out["database"] = str(exc)
        return out
    out["database"] = str(store.path)
    out["database_bytes"] = store.path.stat().st_size if store.path.exists() else None
    for f in store.folder_states():  # the heartbeat is newer; the database outlives it
        if f.last_sync and f.folder not in out["last_sync"]:
            out["last_sync"][f.folder] = f.last_sync.isoformat()
    digests = [r["date"] for r in store.records("digests") if r.get("message_id")]
    if digests and not out["last_digest"]:
        out["last_digest"] = max(digests)
    counts: dict[str, int] = {}
    for item in store.records("outbox"):
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    out["outbox"] = counts
    out["outbox_pending"] = counts.get(outbox.QUEUED, 0) + counts.get(outbox.SENDING, 0)
    out["outbox_unknown"] = counts.get(outbox.UNKNOWN, 0)
    kv = store.record("kv", health.ALERTS_KEY)  # committed with each alert: authoritative
    if kv:
        out["alerts"] = health.Alerts(kv["value"]).active()
    # open problems the owner could not be emailed about (SMTP itself fails): only here
    out["alerts_not_emailed"] = health.untold_alerts(store.records("outbox"), out["alerts"])
    _, d = health.digest_delivery(store.records("outbox"), now, window=timedelta.max)
    out["last_digest_sent"] = None if d is None else d.state == outbox.SENT
    out["last_digest_problem"] = None
    if d is not None and d.state != outbox.SENT:
        out["last_digest_problem"] = f"{d.day}, {d.state}" + (f": {d.detail}" if d.detail else "")
    return out


def _when(value: str | None, now: datetime) -> str:
    if not value:
        return "never"
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return value
    if d.tzinfo is None:  # a date (the digest's)
        return value
    age = int((now - d).total_seconds())
    ago = (f"{age} s" if age < 120 else f"{age // 60} min" if age < 7200 else
           f"{age // 3600} h" if age < 172800 else f"{age // 86400} days")
    return f"{d.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago} ago)"


def format_status(rep: dict[str, Any], now: datetime) -> str:
    lines = [f"daemon:        {rep['daemon']}"]
    syncs = rep["last_sync"]
    if syncs:
        for i, (folder, when) in enumerate(sorted(syncs.items())):
            label = "last sync:" if i == 0 else ""
            lines.append(f"{label:<15}{folder}: {_when(when, now)}")
    else:
        lines.append("last sync:     never")
    lines.append(f"last IDLE:     {_when(rep['last_idle_activity'], now)}")
    lines.append(f"last digest:   {rep['last_digest'] or 'never'}")
    if rep["database_bytes"] is not None:
        lines.append(f"database:      {rep['database']} ({rep['database_bytes'] / 1e6:.1f} MB)")
    else:
        lines.append(f"database:      {rep['database']}")
    if rep["outbox"]:
        lines.append(f"outbox:        {rep['outbox_pending']} pending, "
                     f"{rep['outbox_unknown']} unknown ("
                     + ", ".join(f"{n} {s}" for s, n in sorted(rep["outbox"].items())) + ")")
    else:
        lines.append("outbox:        empty")
    if rep.get("last_digest_problem"):
        lines.append(f"digest sent:   no ({rep['last_digest_problem']})")
    untold = rep.get("alerts_not_emailed") or {}
    told = [p for p in rep["alerts"] if p not in untold]
    if told:
        lines.append("problems:      " + ", ".join(told) + " (the owner was told)")
    for i, (problem, why) in enumerate(sorted(untold.items())):
        label = "problems:" if i == 0 and not told else ""
        lines.append(f"{label:<15}{problem} (the owner was NOT told; alert email {why}; "
                     "check [smtp] and [digest] to in the config)")
    errs = rep["errors_24h"]
    lines.append(f"errors (24 h): {len(errs) or 'none'}")
    for e in errs[-20:]:
        lines.append(f"  {e['time'][:19].replace('T', ' ')} {e.get('level', 'error'):<7} "
                     f"{e['message']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    settings = _load(args)
    now = datetime.now(UTC)
    rep = status_report(settings, now)
    if args.json:
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        print(format_status(rep, now))
    return 0


def cmd_install_service(args: argparse.Namespace) -> int:
    from . import health

    config = Path(args.config).expanduser().resolve()
    path = Path(args.path).expanduser() if args.path else health.default_unit_path(os.environ)
    settings = _load(args)
    text = health.unit_text(sys.executable, config, workdir=config.parent)
    env_vars = sorted({v for v in (settings.imap.password.env_var, settings.smtp.password.env_var)
                       if v})
    if env_vars:
        print(f"mailbot: note: the password comes from ${', $'.join(env_vars)}, which the "
              "service does not see (systemd does not read your shell's profile). Put "
              f"{env_vars[0]}=... in {health.SERVICE_ENV_FILE.replace('%h', '~')} (chmod 600), "
              "or switch to password_keyring or password_command (mailbot init asks).",
              file=sys.stderr)
    if path.exists():
        current = path.read_text(encoding="utf-8", errors="replace")
        if current == text:
            print(f"{path} is already installed and up to date")
        elif not args.force:
            print(f"mailbot: {path} exists and differs; not overwriting it "
                  "(use --force to replace it)", file=sys.stderr)
            return 1
    if not path.exists() or path.read_text(encoding="utf-8", errors="replace") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        print(f"wrote {path}")
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "$USER"
    print()
    print(health.ENABLE_HINT.format(user=user))
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailbot",
        description="Reminds a small-business owner which customers to write to, "
        "from their own mailbox.",
    )
    p.add_argument("--version", action="version", version=f"mailbot {__version__}")
    p.add_argument("--config", default=None,
                   help="config file (default: $MAILBOT_CONFIG or ./config.toml)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .setup_wizard import add_init_arguments, cmd_init

    # first in --help: what a new owner runs first
    ini = sub.add_parser("init", help="write or edit config.toml: asks a few questions "
                         "(or takes flags), recognises the provider, tests the login")
    add_init_arguments(ini)
    ini.set_defaults(func=cmd_init, output_command=True)

    r = sub.add_parser("run", help="run the daemon (the bundled demo when no config exists)")
    r.add_argument("--once", action="store_true", help="one full sync, then exit")
    r.set_defaults(func=cmd_run)
    sub.add_parser("check", help="test DNS, TLS, IMAP and SMTP login with the config"
                   ).set_defaults(func=cmd_check, output_command=True)
    au = sub.add_parser("auth", help="sign in with OAuth2 (Google, Microsoft) and store the "
                        "refresh token; then test the IMAP and SMTP login")
    au.add_argument("--loopback", action="store_true",
                    help="sign in with a browser on this computer instead of a device code")
    au.add_argument("--config", default=argparse.SUPPRESS, help="config file (as above)")
    au.set_defaults(func=cmd_auth, output_command=True)
    i = sub.add_parser("import", help="import an mbox file or a Maildir")
    i.add_argument("path")
    i.set_defaults(func=cmd_import)
    ic = sub.add_parser("import-customers", help="mark customers from a CSV (email,name,...)")
    ic.add_argument("file")
    ic.set_defaults(func=cmd_import_customers)
    c = sub.add_parser("customers", help="list customers")
    c.add_argument("--status", choices=[s.value for s in ContactStatus])
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_customers, output_command=True)
    one = sub.add_parser("customer", help="one customer's timeline")
    one.add_argument("address")
    one.add_argument("--json", action="store_true")
    one.set_defaults(func=cmd_customer, output_command=True)
    sub.add_parser("demo", help="show mailbot on a bundled sample mailbox").set_defaults(
        func=cmd_demo)
    d = sub.add_parser("digest", help="preview (or send now) the morning email")
    d.add_argument("--preview", action="store_true", help="print it; send nothing")
    d.add_argument("--as-of", help="pretend it is this date (YYYY-MM-DD) or date-time")
    d.set_defaults(func=cmd_digest, output_command=True)
    o = sub.add_parser("outbox", help="what mailbot sent or is trying to send")
    o.add_argument("--retry-now", action="store_true",
                   help="send queued items now instead of waiting for their retry time")
    o.set_defaults(func=cmd_outbox, output_command=True)
    st = sub.add_parser("status", help="is the daemon running; last sync, digest, errors")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status, output_command=True)
    svc = sub.add_parser("install-service", help="write a systemd user unit for the daemon")
    svc.add_argument("--path", help="where to write it "
                     "(default: ~/.config/systemd/user/mailbot.service)")
    svc.add_argument("--force", action="store_true", help="replace a different existing unit")
    svc.set_defaults(func=cmd_install_service, output_command=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config_given = args.config is not None or "MAILBOT_CONFIG" in os.environ
    if args.config is None:
        args.config = str(default_config_path(os.environ))
    # commands whose output is the product keep INFO lines out of it unless -v
    quiet = args.quiet or (not args.verbose and getattr(args, "output_command", False))
    setup_logging(-1 if quiet else args.verbose, args.log_format)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `mailbot digest --preview | head`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ConfigError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG: systemd will not restart-loop on it
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
