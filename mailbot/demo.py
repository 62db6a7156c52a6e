"""The bundled demo: a small linen shop's mailbox, generated deterministically.

Dates are relative to "now" so the morning list always has something to say.
Used by ``mailbot demo`` (and ``mailbot run`` when no config exists) and by tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from .config import Settings, load_settings

OWNER = ("Olivia Owner", "olivia@linen.example")

CUSTOMERS = [
    ("Ana Lima", "ana.lima@example.net", 21, 9),  # (name, address, usual gap days, count)
    ("Tom Becker", "tom@becker-family.example", 45, 6),
    ("Priya Nair", "priya.nair@example.org", 60, 7),
    ("Lee Wong", "lee.wong@example.com", 30, 5),
    ("Sam Okafor", "sam@okafor.example", 0, 1),
    ("Maria Rossi", "maria.rossi@example.it", 25, 14),
    ("Jonas Berg", "jonas@berg.example", 90, 3),
]

SUBJECTS = [
    "Spring order", "Question about linen napkins", "Thank you!", "Gift wrapping?",
    "Table runner sizes", "Order arrived", "Do you ship to Norway?", "Washing instructions",
]


def demo_config_text(data_dir: Path) -> str:
    return f"""
[owner]
name = "{OWNER[0]}"
addresses = ["{OWNER[1]}"]
timezone = "Europe/Berlin"
signature = "Olivia\\nOlivia's Linen"

[imap]
host = "127.0.0.1"
security = "none"

[smtp]
host = "127.0.0.1"
security = "none"

[data]
dir = "{data_dir}"
"""


def demo_settings(tmp: Path) -> Settings:
    path = tmp / "demo.toml"
    path.write_text(demo_config_text(tmp / "data"), encoding="utf-8")
    return load_settings(path, env={})


def _msg(sender: tuple[str, str], to: tuple[str, str], subject: str, body: str,
         when: datetime, mid: str, *, reply_to_id: str = "",
         headers: dict[str, str] | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = f"{sender[0]} <{sender[1]}>"
    m["To"] = f"{to[0]} <{to[1]}>"
    m["Subject"] = subject
    m["Date"] = format_datetime(when)
    m["Message-ID"] = f"<{mid}>"
    if reply_to_id:
        m["In-Reply-To"] = f"<{reply_to_id}>"
        m["References"] = f"<{reply_to_id}>"
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(body)
    return bytes(m)


def demo_messages(now: datetime | None = None, seed: int = 7) -> Iterator[bytes]:
    """About 70 messages: customers in and out, plus mail that is not customer mail."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    n = 0
    for name, addr, gap, count in CUSTOMERS:
        first = name.split()[0]
        # the newest message is `quiet` days old; older ones every `gap` days
        quiet = {"Ana": 63, "Tom": 6, "Priya": 365 * 2 - 200, "Lee": 12, "Sam": 12,
                 "Maria": 70, "Jonas": 120}[first]
        for i in range(count):
            when = now - timedelta(days=quiet + i * max(gap, 1), hours=rng.randint(0, 8))
            subject = SUBJECTS[(i + len(name)) % len(SUBJECTS)]
            n += 1
            mid = f"demo-{n}@{addr.split('@')[1]}"
            body = f"Hello Olivia,\n\n{subject.lower()}: could you tell me more?\n\nBest,\n{first}"
            if first == "Lee" and i == 0:
                subject = "Parcel arrived damaged"
                body = ("Hi Olivia,\n\nthe parcel arrived damaged and two napkins are torn. "
                        "I am quite disappointed.\n\nLee")
            yield _msg((name, addr), OWNER, subject, body, when, mid)
            answered = not (i == 0 and first in ("Tom", "Lee"))
            if answered:
                n += 1
                yield _msg(OWNER, (name, addr), f"Re: {subject}",
                           f"Hi {first},\n\nthank you for writing! Of course.\n\nOlivia",
                           when + timedelta(hours=5), f"demo-{n}@linen.example",
                           reply_to_id=mid)
    # not customers
    for i in range(6):
        n += 1
        yield _msg(("Linen Weekly", "news@linenweekly.example"), OWNER, f"Linen Weekly #{i}",
                   "This week in linen.", now - timedelta(days=7 * i), f"demo-{n}@lw.example",
                   headers={"List-Id": "<weekly.linenweekly.example>",
                            "List-Unsubscribe": "<mailto:unsub@linenweekly.example>"})
    n += 1
    yield _msg(("Shop System", "noreply@shop.example"), OWNER, "New order #1042",
               "You have a new order.", now - timedelta(days=2), f"demo-{n}@shop.example")
    n += 1
    yield _msg(("Ben Carter", "ben@carter.example"), OWNER, "Automatic reply: Invoice",
               "I am out of the office until Monday.", now - timedelta(days=3),
               f"demo-{n}@carter.example", headers={"Auto-Submitted": "auto-replied"})
