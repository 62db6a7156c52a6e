"""Reply-to-send with a real mail client: Debian's neomutt, over the private stack.

neomutt runs in a pseudo-terminal with a muttrc that points it at the stack: IMAP on
127.0.0.1 (the owner's INBOX), SMTP with STARTTLS verified against the stack's CA, and
``record = +Sent`` so that neomutt files its own sent copy in the owner's Sent over IMAP.
A ``push`` in the muttrc types the keys: limit the index to the draft by its Message-ID,
``<reply>`` (``fast_reply``, ``include``: neomutt writes its own attribution line and
``> `` quote and its own In-Reply-To/References), then the editor, then
``<send-message>`` and ``<quit>``.  The editor is a small script that puts the owner's
text above neomutt's quote (top-posting) or below it (bottom-posting).

Needs Debian's ``neomutt`` package (``apt-get install -y neomutt``).
"""

from __future__ import annotations

import email
import email.policy
import fcntl
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from .test_reply_stack import NOTE, Shop, plain

pytestmark = pytest.mark.stack

MARKER_START = "─── Reply above this line"
NEOMUTT_TIMEOUT_S = 60.0
_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z@]|[()][0-9A-B]|[=>])")


def _neomutt() -> str:
    path = shutil.which("neomutt")
    if path is None:
        pytest.fail("neomutt is not installed; install it with: apt-get install -y neomutt",
                    pytrace=False)
    return path


def _muttrc(stack: Any, owner: str, work: Path, editor: Path, message_id: str) -> Path:
    pattern = re.sub(r"([.+?*()\[\]{}|^$\\])", r"\\\\\1", message_id.strip().strip("<>"))
    rc = work / "muttrc"
    rc.write_text(textwrap.dedent(f"""\
        set folder = "imap://{owner}@127.0.0.1:{stack.imap_port}/"
        set imap_user = "{owner}"
        set imap_pass = "{stack.password}"
        set spoolfile = "+INBOX"
        set record = "+Sent"
        set postponed = "+Drafts"
        set smtp_url = "smtp://{owner}@127.0.0.1:{stack.smtp_port}/"
        set smtp_pass = "{stack.password}"
        set ssl_starttls = yes
        set ssl_force_tls = no
        set ssl_ca_certificates_file = "{stack.cafile}"
        set certificate_file = "{work}/certificates"
        set realname = "Olivia Owner"
        set from = "{owner}"
        set use_from = yes
        set fast_reply = yes
        set include = yes
        set editor = "{sys.executable} {editor}"
        set edit_headers = no
        set charset = "utf-8"
        set send_charset = "utf-8"
        set signature = ""
        set copy = yes
        set confirmappend = no
        set confirmcreate = no
        set move = no
        set quit = yes
        set delete = yes
        set mark_old = no
        set wait_key = no
        set sleep_time = 0
        set imap_passive = yes
        set header_cache = ""
        set message_cachedir = ""
        set crypt_autosign = no
        set autocrypt = no
        set abort_unmodified = no
        push "<limit>~i {pattern}<enter><reply><send-message><quit>"
        """), encoding="utf-8")
    return rc


def _editor(work: Path, text: str, where: str) -> Path:
    """An $EDITOR that writes TEXT above ("top") or below ("bottom") neomutt's quote."""
    assert where in ("top", "bottom")
    (work / "text.txt").write_text(text + "\n", encoding="utf-8")
    script = work / "editor.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        path = sys.argv[-1]
        with open(path, encoding="utf-8") as f:
            quote = f.read()
        with open({str(work / "text.txt")!r}, encoding="utf-8") as f:
            text = f.read()
        out = text + "\\n" + quote if {where!r} == "top" else quote + "\\n" + text
        with open(path, "w", encoding="utf-8") as f:
            f.write(out)
        """), encoding="utf-8")
    return script


def neomutt_reply(stack: Any, owner: str, work: Path, to: EmailMessage, text: str,
                  where: str = "top") -> str:
    """Have neomutt reply to TO (found in the owner's IMAP INBOX) with TEXT; returns what
    it showed on its terminal, without escape sequences."""
    work.mkdir(parents=True, exist_ok=True)
    rc = _muttrc(stack, owner, work, _editor(work, text, where), str(to["Message-ID"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUTT", "NEOMUTT"))}
    env.update(TERM="xterm", LANG="C.UTF-8", LC_ALL="C.UTF-8", HOME=str(work),
               EDITOR="false", VISUAL="false")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
    try:
        proc = subprocess.Popen([_neomutt(), "-n", "-F", str(rc)], stdin=slave, stdout=slave,
                                stderr=slave, env=env, cwd=str(work), start_new_session=True)
    finally:
        os.close(slave)
    screen = b""
    deadline = time.monotonic() + NEOMUTT_TIMEOUT_S
    os.set_blocking(master, False)
    try:
        while True:
            try:
                while chunk := os.read(master, 65536):
                    screen += chunk
            except (BlockingIOError, OSError):  # EIO once neomutt closed the terminal
                pass
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                break
            time.sleep(0.05)
    finally:
        os.close(master)
    shown = _ANSI.sub(b" ", screen).decode("utf-8", "replace")
    assert proc.returncode == 0, f"neomutt exited with {proc.returncode}:\n{shown[-3000:]}"
    return shown


def _replies_in_sent(shop: Shop, to: EmailMessage) -> list[EmailMessage]:
    """Messages in the owner's Sent that answer TO (In-Reply-To is its Message-ID)."""
    want = str(to["Message-ID"]).strip()
    out = []
    for raw in shop.stack.fetch_all(shop.owner, "Sent"):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(m, EmailMessage)
        if str(m.get("In-Reply-To", "")).strip() == want:
            out.append(m)
    return out


def _check_neomutt_made_it(shop: Shop, to: EmailMessage, text: str, shown: str) -> str:
    """neomutt filed exactly one reply to TO in Sent, with its own quoting and threading;
    the same message reached the owner's INBOX by SMTP.  Returns its Message-ID."""
    sent = _replies_in_sent(shop, to)
    assert len(sent) == 1, f"neomutt filed {len(sent)} replies in Sent:\n{shown[-3000:]}"
    reply = sent[0]
    body = plain(reply)
    assert text.splitlines()[0] in body
    assert f"\n> {MARKER_START}" in body  # neomutt quoted the draft itself
    assert re.search(r"^On .+, mailbot \(Olivia\) wrote:$", body, re.MULTILINE), body
    assert str(to["Message-ID"]) in str(reply["References"])
    assert reply["From"].addresses[0].addr_spec == shop.owner
    mid = str(reply["Message-ID"])
    assert not mid.strip("<>").startswith("mailbot.")
    assert sum(1 for m in shop.inbox() if str(m["Message-ID"]) == mid) == 1
    # submitted by neomutt over STARTTLS, logged in as the owner
    logged = [e for e in shop.stack.smtp_log() if (e.get("message_id") or "").strip() == mid]
    assert len(logged) == 1 and logged[0]["tls"] and logged[0]["auth"] == shop.owner, logged
    return mid


def test_neomutt_top_posted_reply_sends_exactly_the_owners_text(
        stack: Any, tmp_path: Path) -> None:
    shop = Shop(stack, tmp_path / "shop", "mutt-top")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shown = neomutt_reply(stack, shop.owner, tmp_path / "neomutt", draft, NOTE, "top")
    _check_neomutt_made_it(shop, draft, NOTE, shown)
    shop.run()
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1
    note = mail[-1]
    assert plain(note) == NOTE + "\n"
    assert note["From"].addresses[0].addr_spec == shop.owner
    assert str(note["Message-ID"]).startswith("<mailbot.note.")
    shop.run()
    assert len(shop.customer_mail(customer)) == before + 1
    assert shop.mailbot_mail("confirm") == []
    assert shop.mailbot_mail("notice") == []


def test_neomutt_bottom_posted_reply_is_confirmed_first(stack: Any, tmp_path: Path) -> None:
    """Text below neomutt's quote is doubtful: nothing is sent, the owner is asked; a
    top-posted "yes" from neomutt to that question then sends exactly the text."""
    shop = Shop(stack, tmp_path / "shop", "mutt-bottom")
    draft = shop.drafts()[0]
    customer = shop.customer_of(draft)
    before = len(shop.customer_mail(customer))
    shown = neomutt_reply(stack, shop.owner, tmp_path / "neomutt1", draft, NOTE, "bottom")
    _check_neomutt_made_it(shop, draft, NOTE, shown)
    shop.run()
    shop.run()
    assert len(shop.customer_mail(customer)) == before
    confirms = shop.mailbot_mail("confirm")
    assert len(confirms) == 1
    question = plain(confirms[0])
    assert "text after the quoted draft" in question
    assert question.rstrip("\n").endswith(NOTE)  # exactly what would be sent
    shown = neomutt_reply(stack, shop.owner, tmp_path / "neomutt2", confirms[0], "yes", "top")
    _check_neomutt_made_it(shop, confirms[0], "yes", shown)
    shop.run()
    mail = shop.customer_mail(customer)
    assert len(mail) == before + 1
    assert plain(mail[-1]) == NOTE + "\n"
    shop.run()
    assert len(shop.customer_mail(customer)) == before + 1
