"""Which mail provider an address belongs to, and that provider's settings.

:func:`recognise` is pure: it looks at the address's domain first (gmail.com,
outlook.com, icloud.com, ...) and, for a custom domain, at its MX hosts (a
domain whose MX is ``aspmx.l.google.com`` is on Google Workspace). Anything else
gets the usual guess, ``imap.<domain>`` and ``smtp.<domain>``.

:func:`lookup_mx` finds the MX hosts with dnspython when it happens to be
installed (it is not a dependency of mailbot); otherwise it returns ``[]`` and
recognition falls back to the domain alone. Tests pass their own ``resolver``.

Facts (DESIGN section 7): Microsoft 365 and Outlook.com accept only OAuth2 for
IMAP and SMTP; Gmail and Google Workspace accept an app password or OAuth2; the
others here take an app password (mailbot has OAuth2 presets only for Google and
Microsoft, see docs/oauth2.md); Gmail and Microsoft file SMTP-sent mail in Sent
themselves; iCloud's Sent is "Sent Messages", Gmail's "[Gmail]/Sent Mail".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["Auth", "Login", "OAuthPreset", "Provider", "Resolver", "lookup_mx", "recognise"]

Login = Literal["app-password", "password", "oauth2-only"]
Auth = Literal["password", "oauth2"]  # config.toml's [imap]/[smtp] auth
OAuthPreset = Literal["google", "microsoft"]  # config.toml's [oauth2] provider
Security = Literal["tls", "starttls", "none"]
Resolver = Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class Provider:
    name: str
    imap_host: str
    imap_port: int
    imap_security: Security
    smtp_host: str
    smtp_port: int
    smtp_security: Security
    sent_folder: str  # "" : let mailbot find it (SPECIAL-USE \Sent, then the usual names)
    files_sent_itself: bool  # the provider puts SMTP-sent mail in Sent by itself
    login: Login  # the kind of password it takes ("oauth2-only": none)
    help: str  # how to get a password mailbot can use (or to sign in), one short paragraph
    logins: tuple[Auth, ...] = ("password",)  # the login methods it accepts, the usual first
    oauth2_provider: OAuthPreset | None = None  # [oauth2] provider, when it accepts OAuth2

    @property
    def oauth2_only(self) -> bool:
        return self.logins == ("oauth2",)


_GOOGLE_HELP = (
    "Google wants an app password: turn on 2-Step Verification in your Google Account "
    "(Security), then open 'App passwords' (myaccount.google.com/apppasswords), create one "
    "named mailbot and use its 16 letters as the password. Workspace admins may have to "
    "allow app passwords first. Google also accepts OAuth2, with an app you register "
    "yourself (docs/oauth2.md)."
)
_MICROSOFT_HELP = (
    "{name} accepts only OAuth2 (modern authentication) for IMAP and SMTP; passwords and "
    "app passwords are refused. mailbot signs in with OAuth2 through an app you register "
    "yourself, once (docs/oauth2.md, '1b. Microsoft Entra', about ten minutes): give its "
    "client ID here, then run `mailbot auth` to sign in."
)

GMAIL = Provider(
    name="Gmail",
    imap_host="imap.gmail.com", imap_port=993, imap_security="tls",
    smtp_host="smtp.gmail.com", smtp_port=465, smtp_security="tls",
    sent_folder="[Gmail]/Sent Mail", files_sent_itself=True, login="app-password",
    help=_GOOGLE_HELP, logins=("password", "oauth2"), oauth2_provider="google",
)
WORKSPACE = replace(GMAIL, name="Google Workspace")
OUTLOOK = Provider(
    name="Outlook.com",
    imap_host="outlook.office365.com", imap_port=993, imap_security="tls",
    smtp_host="smtp-mail.outlook.com", smtp_port=587, smtp_security="starttls",
    sent_folder="", files_sent_itself=True, login="oauth2-only",
    help=_MICROSOFT_HELP.format(name="Outlook.com"), logins=("oauth2",),
    oauth2_provider="microsoft",
)
MICROSOFT_365 = replace(
    OUTLOOK, name="Microsoft 365", smtp_host="smtp.office365.com",
    help=_MICROSOFT_HELP.format(name="Microsoft 365"),
)
ICLOUD = Provider(
    name="iCloud",
    imap_host="imap.mail.me.com", imap_port=993, imap_security="tls",
    smtp_host="smtp.mail.me.com", smtp_port=587, smtp_security="starttls",
    sent_folder="Sent Messages", files_sent_itself=False, login="app-password",
    help=(
        "iCloud wants an app-specific password: sign in at account.apple.com, open "
        "'Sign-In and Security', then 'App-Specific Passwords', create one named mailbot "
        "and use it as the password (two-factor authentication must be on)."
    ),
)
YAHOO = Provider(
    name="Yahoo",
    imap_host="imap.mail.yahoo.com", imap_port=993, imap_security="tls",
    smtp_host="smtp.mail.yahoo.com", smtp_port=465, smtp_security="tls",
    sent_folder="", files_sent_itself=False, login="app-password",
    help=(
        "Yahoo wants an app password: open 'Account Security' in your Yahoo account, choose "
        "'Generate app password' (or 'Manage app passwords'), name it mailbot and use the "
        "password it shows."
    ),
)
FASTMAIL = Provider(
    name="Fastmail",
    imap_host="imap.fastmail.com", imap_port=993, imap_security="tls",
    smtp_host="smtp.fastmail.com", smtp_port=465, smtp_security="tls",
    sent_folder="", files_sent_itself=False, login="app-password",
    help=(
        "Fastmail wants an app password: open Settings, 'Privacy & Security', then "
        "'Manage app passwords and access' and create a new app password with IMAP and SMTP "
        "access; use it as the password."
    ),
)


def _zoho(suffix: str, custom: bool) -> Provider:
    pro = "pro" if custom else ""
    return Provider(
        name="Zoho Mail",
        imap_host=f"imap{pro}.zoho.{suffix}", imap_port=993, imap_security="tls",
        smtp_host=f"smtp{pro}.zoho.{suffix}", smtp_port=465, smtp_security="tls",
        sent_folder="", files_sent_itself=False, login="app-password",
        help=(
            "Zoho: turn on IMAP in Zoho Mail (Settings, 'Mail Accounts', 'IMAP Access'); with "
            "two-factor authentication on, create an app password at accounts.zoho.com under "
            "'Security', 'App Passwords' and use it as the password."
        ),
    )


def _generic(domain: str) -> Provider:
    return Provider(
        name="your mail provider",
        imap_host=f"imap.{domain}", imap_port=993, imap_security="tls",
        smtp_host=f"smtp.{domain}", smtp_port=587, smtp_security="starttls",
        sent_folder="", files_sent_itself=False, login="password",
        help=(
            "Use the password of your mailbox, or an app password if your provider offers "
            "them for mail programs (look for 'App passwords' in its security settings). "
            "The server names above are a guess: your provider's help pages for 'IMAP "
            "settings' give the right ones."
        ),
    )


_ZOHO_RE = re.compile(r"^zoho(?:mail)?\.([a-z.]+)$")


def _norm(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _by_domain(domain: str) -> Provider | None:
    if domain in ("gmail.com", "googlemail.com"):
        return GMAIL
    first = domain.split(".", 1)[0]
    if domain in ("live.com", "msn.com") or first in ("outlook", "hotmail"):
        return OUTLOOK
    if domain in ("icloud.com", "me.com", "mac.com"):
        return ICLOUD
    if first == "yahoo" or domain in ("ymail.com", "rocketmail.com"):
        return YAHOO
    if domain in ("fastmail.com", "fastmail.fm"):
        return FASTMAIL
    m = _ZOHO_RE.match(domain)
    if m:
        return _zoho(m.group(1), custom=False)
    return None


def _by_mx(host: str) -> Provider | None:
    if _under(host, "google.com") or _under(host, "googlemail.com"):
        return WORKSPACE
    if host.endswith(".mail.protection.outlook.com"):
        return MICROSOFT_365
    if _under(host, "messagingengine.com"):
        return FASTMAIL
    if _under(host, "icloud.com"):
        return ICLOUD
    if _under(host, "yahoodns.net"):
        return YAHOO
    parts = host.split(".")
    for i, label in enumerate(parts):
        if label in ("zoho", "zohomail") and i + 1 < len(parts):
            return _zoho(".".join(parts[i + 1:]), custom=True)
    return None


def recognise(address: str, mx_hosts: Sequence[str] = ()) -> Provider:
    """The provider of ``address``: by its domain, else by the domain's MX hosts, else generic."""
    domain = _norm(address.rpartition("@")[2])
    known = _by_domain(domain)
    if known is not None:
        return known
    for mx in mx_hosts:
        found = _by_mx(_norm(mx))
        if found is not None:
            return found
    return _generic(domain)


def lookup_mx(domain: str, resolver: Resolver | None = None) -> list[str]:
    """The MX hosts of ``domain``, best first; ``[]`` when unknown.

    ``resolver`` (domain -> host names) replaces DNS, for tests. Without one,
    dnspython is used if installed; it is not a dependency, so usually this
    returns ``[]`` and :func:`recognise` goes by the domain alone. Never raises.
    """
    try:
        if resolver is not None:
            return [_norm(h) for h in resolver(domain) if _norm(h)]
        try:
            dns_resolver: Any = importlib.import_module("dns.resolver")
        except ImportError:
            return []
        answer = dns_resolver.resolve(domain, "MX", lifetime=5.0)
        records = sorted(answer, key=lambda r: int(r.preference))
        return [_norm(str(r.exchange)) for r in records if _norm(str(r.exchange))]
    except Exception:  # no network, NXDOMAIN, a failing resolver: go by the domain
        return []
