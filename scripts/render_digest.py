#!/usr/bin/env python3
"""Render a sample morning digest to look at it as the owner would.

Writes ``build/digest.html``, ``build/digest.eml`` and ``build/draft-N.eml`` (the draft
emails), and, when Chromium is installed, screenshots of the HTML at phone width
(``build/digest-phone.png``, 390 px) and desktop width (``build/digest-desktop.png``).

    .venv/bin/python scripts/render_digest.py [--demo] [--out build] [--phone-height 2600]
        [--chromium /usr/bin/chromium]

Without ``--demo`` the picks are hand-written samples (every reason, long and accented
names). With ``--demo`` the digest is the one ``mailbot demo`` prints: the bundled demo
mailbox is imported and ranked, and the digest is built exactly as the daemon builds it
(``--as-of`` fixes the date, so the picture can be reproduced). The README's
``docs/digest-phone.png`` is ``--demo --phone-height 3000`` (the whole email, about 270 KB).

Everything here is fake: names, addresses and mail are made up.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbot.digest import DraftEmail, Figures, build_digest, new_token  # noqa: E402
from mailbot.drafting import TemplateEngine, Voice, bundled_prompts_dir  # noqa: E402
from mailbot.models import Direction, Pick, Reason, Touchpoint  # noqa: E402

NOW = datetime(2025, 11, 24, 6, 30, tzinfo=UTC)
TZ = ZoneInfo("Europe/Berlin")
VOICE = Voice(
    owner_name="Olivia Owner", signature="Olivia\nOlivia's Linen", business="Olivia's Linen"
)


def _tp(
    contact: str, days_ago: float, direction: Direction, subject: str, snippet: str
) -> Touchpoint:
    return Touchpoint(
        message_id=f"{contact}-{days_ago}@mail.example",
        contact=contact,
        direction=direction,
        date=NOW - timedelta(days=days_ago),
        subject=subject,
        snippet=snippet,
        thread_key=f"{contact}-thread",
    )


def sample_picks() -> list[Pick]:
    IN, OUT = Direction.INBOUND, Direction.OUTBOUND
    return [
        Pick(
            contact="tom.baker@bakersfieldcafe.example",
            name="Tom Baker",
            reason=Reason.UNANSWERED,
            why="Tom's email from Thursday ('invoice 7731') is still unanswered (2 business days).",
            score=9.0,
            recent=(
                _tp(
                    "tom.baker@bakersfieldcafe.example",
                    4,
                    IN,
                    "invoice 7731",
                    "Hi Olivia, could you resend the invoice with our VAT number on it? "
                    "Our accountant needs it before the end of the month. Thanks, Tom",
                ),
                _tp(
                    "tom.baker@bakersfieldcafe.example",
                    11,
                    OUT,
                    "Re: tablecloths for the café",
                    "Hi Tom, they're on their way: twelve in sage, as agreed.",
                ),
                _tp(
                    "tom.baker@bakersfieldcafe.example",
                    12,
                    IN,
                    "tablecloths for the café",
                    "Can we get twelve of the sage ones by Friday?",
                ),
            ),
            monthly_counts=(2, 1, 0, 3, 2, 1, 2, 4, 1, 2, 3, 3),
            reply_to_subject="invoice 7731",
            facts={"quiet_days": "4"},
        ),
        Pick(
            contact="ana.lima@correio.example",
            name="Ana Lima",
            reason=Reason.LAPSED,
            why="Ana usually writes every 3 weeks; quiet for 9 weeks (last: 'spring order'). "
            "A hello with no agenda?",
            score=7.5,
            recent=(
                _tp(
                    "ana.lima@correio.example",
                    63,
                    IN,
                    "Re: spring order",
                    "Do you still have the blue linen napkins? My sister loved them so much "
                    "that I promised her a set for her birthday.",
                ),
                _tp(
                    "ana.lima@correio.example",
                    64,
                    OUT,
                    "spring order",
                    "Hi Ana, here is the list you asked for, with the new colours.",
                ),
            ),
            monthly_counts=(1, 2, 2, 3, 1, 2, 2, 1, 0, 0, 0, 0),
            facts={"quiet_days": "63"},
        ),
        Pick(
            contact="priya@shah-studio.example",
            name="Priya Shah",
            reason=Reason.MILESTONE,
            why="One year since Priya's first email today.",
            score=6.0,
            recent=(
                _tp(
                    "priya@shah-studio.example",
                    40,
                    OUT,
                    "Re: cushion covers",
                    "Thank you Priya, the covers will be ready next week.",
                ),
                _tp(
                    "priya@shah-studio.example",
                    41,
                    IN,
                    "cushion covers",
                    "Could you make four more in the ochre?",
                ),
            ),
            monthly_counts=(3, 0, 1, 0, 0, 2, 0, 1, 0, 2, 0, 0),
            facts={"milestone": "anniversary", "years": "1"},
        ),
        Pick(
            contact="m.oconnor@example.net",
            name="Máire O'Connor-Fitzgerald",
            reason=Reason.WELCOME,
            why="Máire first wrote 9 days ago ('wedding table runners'); a welcome note?",
            score=5.0,
            recent=(
                _tp(
                    "m.oconnor@example.net",
                    9,
                    IN,
                    "wedding table runners",
                    "We're getting married in June and would love thirty runners in natural linen.",
                ),
            ),
            monthly_counts=(0,) * 11 + (1,),
        ),
        Pick(
            contact="jkowalski@poczta.example",
            name="Jan Kowalski",
            reason=Reason.NO_REASON,
            why="Jan has written 14 times and it has been 7 weeks; a hello for no reason?",
            score=3.0,
            recent=(
                _tp(
                    "jkowalski@poczta.example",
                    50,
                    IN,
                    "Re: thank you",
                    "The quilt arrived safely, thank you again!",
                ),
            ),
            monthly_counts=(1, 1, 2, 1, 0, 1, 2, 1, 1, 0, 0, 0),
        ),
    ]


def screenshot(chromium: str, html: Path, png: Path, width: int, height: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="mailbot-chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    if done.returncode != 0 or not png.exists():
        print(f"chromium failed ({done.returncode}): {done.stderr[-500:]}", file=sys.stderr)
        return False
    return True


def sample_digest() -> tuple[EmailMessage, list[DraftEmail]]:
    """The hand-written sample picks, drafted from the bundled templates."""
    picks = sample_picks()
    engine = TemplateEngine(bundled_prompts_dir())
    drafts = [engine.draft(p, VOICE, now=NOW) for p in picks]
    return build_digest(
        picks,
        drafts,
        Figures(customers=312, replies_waiting=3, gone_quiet_this_month=5, notes_sent_7d=4),
        owner_name=VOICE.owner_name,
        owner_address="olivia@linen.example",
        to_address="olivia@linen.example",
        now=NOW,
        tz=TZ,
        digest_token=new_token(),
        draft_tokens=[new_token() for _ in picks],
        domain="linen.example",
    )


def demo_digest(now: datetime) -> tuple[EmailMessage, list[DraftEmail]]:
    """The digest of the bundled demo mailbox, built as ``mailbot demo`` builds it."""
    from mailbot.cli import import_messages
    from mailbot.demo import demo_messages, demo_settings
    from mailbot.morning import compose, make_drafter
    from mailbot.store import Store

    with tempfile.TemporaryDirectory(prefix="mailbot-render-") as tmp:
        settings = demo_settings(Path(tmp))
        with Store(settings.data.dir) as store:
            import_messages(store, settings, demo_messages(now), "demo")
            composed = compose(store, settings, now, make_drafter(settings))
    return composed.digest, composed.drafts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--demo", action="store_true",
                        help="the bundled demo mailbox's digest (what `mailbot demo` prints)")
    parser.add_argument("--as-of", default=NOW.isoformat(),
                        help="with --demo: the moment the digest is built (ISO date-time, "
                        f"default {NOW.isoformat()})")
    parser.add_argument("--phone-height", type=int, default=2600,
                        help="height of the phone screenshot in px (default 2600; the page "
                        "is cut there)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    if args.demo:
        now = datetime.fromisoformat(args.as_of)
        if now.tzinfo is None:
            now = now.replace(tzinfo=TZ)
        digest, draft_emails = demo_digest(now.astimezone(UTC))
    else:
        digest, draft_emails = sample_digest()
    html_part = digest.get_body(("html",))
    assert html_part is not None
    html_path = out / "digest.html"
    html_path.write_text(str(html_part.get_content()), encoding="utf-8")
    (out / "digest.eml").write_bytes(digest.as_bytes())
    for n, draft in enumerate(draft_emails, 1):
        (out / f"draft-{n}.eml").write_bytes(draft.message.as_bytes())
    print(f"wrote {html_path}, {out / 'digest.eml'} and {len(draft_emails)} draft emails")

    if not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium}: skipped the screenshots")
        return 0
    ok = True
    for name, width, height in (
        ("digest-phone.png", 390, args.phone_height),
        ("digest-desktop.png", 1000, 1500),
    ):
        png = out / name
        png.unlink(missing_ok=True)
        if screenshot(args.chromium, html_path, png, width, height):
            print(f"wrote {png} ({width}px wide)")
        else:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
