"""Write the owner replies in tests/replies/ (run: python -m tests.replies.make_samples).

Each function imitates one mail client replying to the draft built in
tests/test_replies.py: its headers, its MIME layout and transfer encodings, its quote
header (attribution line or Outlook block, in the client's language) and its way of
quoting (``> `` per line, flowed re-wrapping, an unquoted copy, an HTML blockquote).
The owner's words in each reply are the ones tests/test_replies.py expects, written
there again on purpose. Re-run after a change to the draft email's layout.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from tests.test_replies import DIGEST_ID, DRAFT_BODY, DRAFT_ID, OWNER, REF

HERE = Path(__file__).parent
BODY = DRAFT_BODY.rstrip("\n")
DRAFT_LINES = BODY.split("\n")
SUBJECT = REF.subject
ADDR = f"&lt;{OWNER}&gt;"

# --------------------------------------------------------------------------- helpers


def message(
    *,
    mid: str,
    agent: tuple[str, str] = ("User-Agent", ""),
    subject: str = f"Re: {SUBJECT}",
    date: str = "Tue, 24 Nov 2026 08:02:11 +0100",
    sender: str = f"Olivia Owner <{OWNER}>",
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f'"mailbot (Olivia)" <{OWNER}>'
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{mid}>"
    msg["In-Reply-To"] = f"<{DRAFT_ID}>"
    msg["References"] = f"<{DIGEST_ID}> <{DRAFT_ID}>"
    if agent[1]:
        msg[agent[0]] = agent[1]
    return msg


def quote(lines: list[str], prefix: str = "> ", blank: str = ">") -> str:
    return "\n".join(prefix + line if line else blank for line in lines)


def hard_wrap(lines: list[str], width: int) -> list[str]:
    """Outlook's "wrap text at 76 characters" (or any client that re-wraps)."""
    out: list[str] = []
    for line in lines:
        out.extend(textwrap.wrap(line, width, break_on_hyphens=False) or [""])
    return out


def flowed_quote(lines: list[str], width: int = 72) -> str:
    """Thunderbird's format=flowed quote: soft breaks end with a space."""
    out: list[str] = []
    for line in lines:
        if not line:
            out.append(">")
            continue
        pieces = textwrap.wrap(line, width - 2, break_on_hyphens=False)
        out.extend(f"> {piece} " for piece in pieces[:-1])
        out.append(f"> {pieces[-1]}")
    return "\n".join(out)


def html_lines(lines: list[str]) -> str:
    return "<br>\n".join(html.escape(line, quote=False) for line in lines)


def write(name: str, msg: EmailMessage) -> None:
    (HERE / name).write_bytes(msg.as_bytes(policy=SMTP.clone(linesep="\n")))


def gmail_html(own: list[str], attribution: str, quoted: list[str] | None = None) -> str:
    divs = "".join(f"<div>{html.escape(line, quote=False) or '<br>'}</div>" for line in own)
    return (
        f'<div dir="ltr">{divs}</div><br><div class="gmail_quote gmail_quote_container">'
        f'<div dir="ltr" class="gmail_attr">{attribution}<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px '
        'solid rgb(204,204,204);padding-left:1ex">'
        f"{html_lines(quoted or DRAFT_LINES)}</blockquote></div>\n"
    )


def gmail(
    name: str,
    own: str,
    attribution_text: str,
    attribution_html: str,
    *,
    quoted: list[str] | None = None,
    agent: str = "",
) -> None:
    """Gmail web (and the apps): text/plain and text/html, QP, "> " quote."""
    msg = message(mid="CAK7qZ1x-" + name.replace("_", "-") + "@mail.gmail.com")
    lines = quoted or DRAFT_LINES
    plain = (own + "\n\n" if own else "") + attribution_text + "\n\n" + quote(lines) + "\n"
    msg.set_content(plain, cte="quoted-printable")
    msg.add_alternative(
        gmail_html(own.split("\n") if own else [], attribution_html, lines),
        subtype="html",
        cte="quoted-printable",
    )
    if agent:
        msg["X-Mailer"] = agent
    write(name, msg)


GMAIL_EN = f"On Tue, 24 Nov 2026 at 07:31, mailbot (Olivia) <{OWNER}> wrote:"
GMAIL_EN_HTML = (
    f'On Tue, 24 Nov 2026 at 07:31, mailbot (Olivia) &lt;<a href="mailto:{OWNER}">{OWNER}'
    "</a>&gt; wrote:"
)


def outlook_block(lang: str, sep: str = "_" * 32) -> str:
    heads = {
        "en": ("From", "Sent", "To", "Subject", "Tuesday, November 24, 2026 7:31 AM", ": "),
        "de": ("Von", "Gesendet", "An", "Betreff", "Dienstag, 24. November 2026 07:31", ": "),
        "fr": ("De", "Envoyé", "À", "Objet", "mardi 24 novembre 2026 07:31", " : "),
    }
    frm, sent, to, subj, when, colon = heads[lang]
    return (
        f"{sep}\n"
        f"{frm}{colon}mailbot (Olivia) <{OWNER}>\n"
        f"{sent}{colon}{when}\n"
        f"{to}{colon}Olivia Owner <{OWNER}>\n"
        f"{subj}{colon}{SUBJECT}\n"
    )


def outlook_plain(
    name: str, own: str, block: str, *, body: list[str] | None = None, after: str = ""
) -> None:
    """Outlook desktop, plain text: top-posted, an unquoted copy under a header block."""
    msg = message(
        mid="AM9PR01MB7425C1D3F2B8A0E51B2C9D41A1@AM9PR01MB7425.eurprd01.prod.outlook.com",
        agent=("X-Mailer", "Microsoft Outlook 16.0"),
        subject=f"RE: {SUBJECT}",
    )
    copy = "\n".join(body or DRAFT_LINES)
    text = f"{own}\n\n{block}\n{copy}\n" + (f"\n{after}\n" if after else "")
    msg.set_content(text, cte="quoted-printable")
    msg["Thread-Index"] = "AQHbPz1k3sL0aQ8fVkGcX2mJtZ7bDg=="
    write(name, msg)


# --------------------------------------------------------------------------- clients


def gmail_web() -> None:
    gmail(
        "gmail_web_en.eml",
        "Hi Ana,\n\nThe sage linen arrived this morning and I thought of you straight away. "
        "Shall I put a set of napkins aside for you?\n\nOlivia",
        GMAIL_EN,
        GMAIL_EN_HTML,
    )
    gmail(
        "gmail_web_de.eml",
        "Hallo Ana,\n\nheute ist das neue Leinen in Salbei gekommen \u2013 soll ich dir ein paar "
        "Muster schicken?\n\nLiebe Grüße\nOlivia",
        f"Am Di., 24. Nov. 2026 um 07:31 Uhr schrieb mailbot (Olivia) <\n{OWNER}>:",
        f'Am Di., 24. Nov. 2026 um 07:31&nbsp;Uhr schrieb mailbot (Olivia) &lt;<a href="mailto:'
        f'{OWNER}">{OWNER}</a>&gt;:',
    )
    gmail(
        "gmail_web_fr.eml",
        "Bonjour Ana,\n\nLe nouveau lin couleur sauge vient d'arriver. Voulez-vous que je "
        "vous envoie quelques échantillons ?\n\nBien à vous,\nOlivia",
        f"Le mar. 24 nov. 2026 à 07:31, mailbot (Olivia) <{OWNER}> a\nécrit :",
        f'Le&nbsp;mar. 24 nov. 2026 à&nbsp;07:31, mailbot (Olivia) &lt;<a href="mailto:{OWNER}">'
        f"{OWNER}</a>&gt; a écrit&nbsp;:",
    )
    gmail(
        "gmail_web_es.eml",
        "Hola Ana:\n\nAcaba de llegar el lino nuevo en color salvia. ¿Quieres que te mande "
        "unas muestras?\n\nUn abrazo,\nOlivia",
        f"El mar, 24 nov 2026 a las 7:31, mailbot (Olivia) (<{OWNER}>)\nescribió:",
        f'El mar, 24 nov 2026 a las 7:31, mailbot (Olivia) (&lt;<a href="mailto:{OWNER}">'
        f"{OWNER}</a>&gt;) escribió:",
    )


def gmail_apps() -> None:
    gmail(
        "gmail_android.eml",
        "Hi Ana, quick one from my phone: the oat linen is back in stock if you still want "
        "those napkins. Olivia",
        f"On Tue, 24 Nov 2026, 07:31 mailbot (Olivia), <{OWNER}> wrote:",
        f'On Tue, 24 Nov 2026, 07:31 mailbot (Olivia), &lt;<a href="mailto:{OWNER}">{OWNER}'
        "</a>&gt; wrote:",
    )
    gmail(
        "gmail_ios.eml",
        "Hi Ana,\n\nWe are restocking the blue napkins next week. Would you like me to keep "
        "six for you?\n\nBest,\nOlivia\n\n-- \nOlivia Owner\nOlivia's Linen · Berlin",
        f"On Tue, Nov 24, 2026 at 7:31 AM mailbot (Olivia) <{OWNER}>\nwrote:",
        f'On Tue, Nov 24, 2026 at 7:31 AM mailbot (Olivia) &lt;<a href="mailto:{OWNER}">'
        f"{OWNER}</a>&gt; wrote:",
    )


def gmail_html_only() -> None:
    msg = message(mid="CAK7qZ1x-html-only@mail.gmail.com")
    own = [
        "Hi Ana,",
        "",
        "Lovely to hear from you in spring. The oat linen is back, and I kept two aprons "
        "in your size.",
        "",
        "Olivia",
    ]
    msg.set_content(gmail_html(own, GMAIL_EN_HTML), subtype="html", cte="quoted-printable")
    write("gmail_html_only.eml", msg)


def outlook_desktop() -> None:
    outlook_plain(
        "outlook_desktop_en.eml",
        "Hi Ana,\n\nThank you again for your spring order. A new washed linen in sage has "
        "just come in \u2013 I think it would go beautifully with your napkins.\n\nKind regards,"
        "\nOlivia",
        outlook_block("en"),
    )
    outlook_plain(
        "outlook_desktop_original_message.eml",
        "Hi Ana,\n\nJust a short hello from the shop. We are open late on Thursday if you "
        "would like to see the new colours.\n\nOlivia",
        outlook_block("en", sep="-----Original Message-----"),
    )
    outlook_plain(
        "outlook_desktop_de.eml",
        "Hallo Ana,\n\nvielen Dank noch einmal für deine Bestellung im Frühjahr. Wir haben "
        "gerade neues Leinen in Salbei bekommen.\n\nViele Grüße\nOlivia",
        outlook_block("de"),
        body=hard_wrap(DRAFT_LINES, 76),
    )
    outlook_plain(
        "outlook_desktop_fr.eml",
        "Bonjour Ana,\n\nMerci encore pour votre commande du printemps. Le lin lavé couleur "
        "sauge vient d'arriver à la boutique.\n\nCordialement,\nOlivia",
        outlook_block("fr"),
    )
    # Samsung Email: its own separator and a "Date:" line, same unquoted copy.
    msg = message(mid="20261124080211.b5c1@email.android.com")
    msg.set_content(
        "Hi Ana, the sage linen is in. Shall I send you a few swatches this week?\n\nOlivia"
        "\n\n\n\nSent from my Galaxy\n\n\n-------- Original message --------\n"
        f"From: mailbot (Olivia) <{OWNER}> \nDate: 24/11/2026 07:31 (GMT+01:00) \n"
        f"To: Olivia Owner <{OWNER}> \nSubject: {SUBJECT} \n\n" + BODY + "\n",
        cte="base64",
    )
    write("samsung_email.eml", msg)


def outlook_html() -> None:
    own = (
        '<div class="elementToProof" style="font-family: Aptos, Arial, sans-serif; '
        'font-size: 12pt; color: rgb(0, 0, 0);">{}</div>'
    )
    body = "".join(
        own.format(html.escape(line) or "<br>")
        for line in [
            "Hi Ana,",
            "",
            "The sage and oat linen are both in now. I can post swatches tomorrow if you like.",
            "",
            "Warm wishes,",
            "Olivia",
        ]
    )
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        '<style type="text/css" style="display:none;"> P {margin-top:0;margin-bottom:0;} '
        '</style></head><body dir="ltr">'
        + body
        + '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" '
        'tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" '
        f'style="font-size:11pt" color="#000000"><b>From:</b> mailbot (Olivia) {ADDR}<br>'
        "<b>Sent:</b> Tuesday, November 24, 2026 07:31<br>"
        f"<b>To:</b> Olivia Owner {ADDR}<br><b>Subject:</b> {html.escape(SUBJECT)}</font>"
        '<div>&nbsp;</div></div><div class="BodyFragment"><font size="2"><span '
        'style="font-size:11pt;"><div class="PlainText">'
        + html_lines(DRAFT_LINES)
        + "</div></span></font></div></body></html>\n"
    )
    msg = message(
        mid="DB9PR10MB6227E5B1A0F0E2F9A8C4D3E6B2@DB9PR10MB6227.EURPRD10.PROD.OUTLOOK.COM",
        subject=f"Re: {SUBJECT}",
    )
    msg.set_content(page, subtype="html", cte="base64")
    write("outlook_web_html_only.eml", msg)

    def p(text: str) -> str:
        return f"<p class=MsoNormal>{html.escape(text) if text else '<o:p>&nbsp;</o:p>'}</p>\n"

    def pt(text: str) -> str:
        escaped = html.escape(text) if text else "<o:p>&nbsp;</o:p>"
        return f"<p class=MsoPlainText>{escaped}</p>\n"

    word = (
        '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:'
        'office:office"><head><meta http-equiv=Content-Type content="text/html; '
        'charset=utf-8"><style><!-- p.MsoNormal {margin:0cm;font-size:11.0pt;} --></style>'
        '</head><body lang=EN-GB link="#0563C1" vlink="#954F72"><div class=WordSection1>\n'
        + p("Hi Ana,")
        + p("")
        + p("Your napkins were the first thing we restocked. Would you like the oat or the sage?")
        + p("")
        + p("All the best,")
        + p("Olivia")
        + p("")
        + "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm "
        f"0cm'><p class=MsoNormal><b>From:</b> mailbot (Olivia) {ADDR} <br><b>Sent:</b> "
        f"Tuesday, November 24, 2026 7:31 AM<br><b>To:</b> Olivia Owner {ADDR}<br>"
        f"<b>Subject:</b> {html.escape(SUBJECT)}</p></div></div>\n"
        + p("")
        + "".join(pt(line) for line in DRAFT_LINES)
        + "</div></body></html>\n"
    )
    msg = message(
        mid="AM9PR01MB7425D2E4A3C9B1F62C3DAE52B2@AM9PR01MB7425.eurprd01.prod.outlook.com",
        agent=("X-Mailer", "Microsoft Outlook 16.0"),
        subject=f"RE: {SUBJECT}",
    )
    msg.set_content(word, subtype="html", cte="quoted-printable")
    write("outlook_desktop_html_only.eml", msg)


def outlook_mobile() -> None:
    msg = message(mid="PAXPR10MB5520A1B2C3D4E5F60718293A4B@PAXPR10MB5520.EURPRD10.PROD.OUTLOOK.COM")
    plain = (
        "Hi Ana, the sage linen is here! Shall I post you some swatches?\n\nOlivia\n\n"
        "Get Outlook for iOS<https://aka.ms/o0ukef>\n" + outlook_block("en") + "\n" + BODY + "\n"
    )
    msg.set_content(plain, cte="quoted-printable")
    msg.add_alternative(
        '<html><body><div dir="ltr">Hi Ana, the sage linen is here! Shall I post you some '
        'swatches?</div><div dir="ltr"><br></div><div dir="ltr">Olivia</div><div '
        'id="ms-outlook-mobile-signature"><br>Get <a href="https://aka.ms/o0ukef">Outlook '
        'for iOS</a></div><div id="appendonsend"></div><hr style="display:inline-block;'
        'width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><b>From:</b> mailbot '
        f"(Olivia) {ADDR}<br><b>Sent:</b> Tuesday, November 24, 2026 7:31:00 AM</div>"
        f"<div>{html_lines(DRAFT_LINES)}</div></body></html>\n",
        subtype="html",
        cte="quoted-printable",
    )
    write("outlook_ios.eml", msg)


def apple() -> None:
    msg = message(
        mid="8F2C1E7A-3B4D-4C5E-9F60-7A8B9C0D1E2F@linen.example",
        agent=("X-Mailer", "Apple Mail (2.3826.300.87.4.3)"),
    )
    msg.set_content(
        "Dear Ana,\n\nI hope you are well! Our spring linen has arrived early this year and "
        "the sage is my favourite.\n\nWarmly,\nOlivia\n\n"
        f"On 24 Nov 2026, at 07:31, mailbot (Olivia) <{OWNER}> wrote:\n\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("apple_mail_mac.eml", msg)

    msg = message(
        mid="A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@linen.example",
        agent=("X-Mailer", "iPhone Mail (22B91)"),
    )
    msg.set_content(
        "Hi Ana, the blue napkins are back in stock. Want me to hold a set for you?\n\n"
        "Sent from my iPhone\n\n"
        f"> On 24 Nov 2026, at 07:31, mailbot (Olivia) <{OWNER}> wrote:\n>\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("iphone_mail.eml", msg)

    msg = message(
        mid="0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9@linen.example",
        agent=("X-Mailer", "iPhone Mail (22B91)"),
    )
    msg.set_content(
        "Liebe Ana,\n\ndas neue Leinen ist da. Magst du vorbeikommen?\n\nOlivia\n\n"
        "Von meinem iPhone gesendet\n\n"
        f"> Am 24.11.2026 um 07:31 schrieb mailbot (Olivia) <{OWNER}>:\n>\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("iphone_mail_de.eml", msg)


def thunderbird() -> None:
    for name, own, attribution in (
        (
            "thunderbird.eml",
            "Hi Ana,\n\nthe sage linen is in, and I saved you a few swatches. Shall I post "
            "them?\n\nOlivia",
            "On 24/11/2026 07:31, mailbot (Olivia) wrote:",
        ),
        (
            "thunderbird_address_book_name.eml",
            "Hi Ana,\n\nwe will be at the Saturday market with the new linen. Come and say "
            "hello!\n\nOlivia",
            "On 24/11/2026 07:31, Olivia Owner wrote:",
        ),
    ):
        msg = message(
            mid=f"{name[:-4]}-5f1a2b3c@linen.example",
            agent=(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
            ),
        )
        msg.set_content(
            own + "\n\n" + attribution + "\n" + flowed_quote(DRAFT_LINES) + "\n", cte="8bit"
        )
        msg.set_param("format", "flowed")
        write(name, msg)


def mutt() -> None:
    agent = ("User-Agent", "NeoMutt/20250113")
    header = f"* mailbot (Olivia) <{OWNER}> [2026-11-24 07:31]:"
    split = DRAFT_LINES.index("Olivia")  # the draft's signature line
    msg = message(mid="20261124070211.GA4711@linen.example", agent=agent)
    msg.set_content(
        header
        + "\n"
        + quote(DRAFT_LINES[: split - 1])
        + "\n\nSure, but mention the oat colour too, Ana asked about it in spring.\n\n"
        + quote(DRAFT_LINES[split - 1 :])
        + "\n",
        cte="8bit",
    )
    write("mutt_inline.eml", msg)

    msg = message(mid="20261124070945.GB4711@linen.example", agent=agent)
    msg.set_content(
        header
        + "\n"
        + quote(DRAFT_LINES)
        + "\n\nHi Ana,\n\nthe oat linen is back. Shall I keep a few metres for you?\n\n"
        "Olivia\n\n-- \nOlivia Owner · Olivia's Linen\n",
        cte="8bit",
    )
    write("mutt_bottom_post.eml", msg)


# --------------------------------------------------------------------------- commands


def commands() -> None:
    gmail("cmd_gmail_empty.eml", "", GMAIL_EN, GMAIL_EN_HTML)
    gmail("cmd_gmail_snooze.eml", "Snooze 3 months", GMAIL_EN, GMAIL_EN_HTML)
    msg = message(mid="C0FFEE00-1111-4222-8333-444455556666@linen.example")
    msg.set_content(
        "Yes\n\nSent from my iPhone\n\n"
        f"> On 24 Nov 2026, at 07:31, mailbot (Olivia) <{OWNER}> wrote:\n>\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("cmd_iphone_yes.eml", msg)
    outlook_plain("cmd_outlook_skip.eml", "skip", outlook_block("en"))
    outlook_plain("cmd_outlook_de_not_customer.eml", "Not a customer.", outlook_block("de"))


# --------------------------------------------------------------------------- adversarial


def adversarial() -> None:
    gmail(
        "adv_pasted_why.eml",
        "Hi Ana,\n\nAna usually writes every 3 weeks; quiet for 9 (last: 'spring order'). "
        "So here is a hello!\n\nOlivia",
        GMAIL_EN,
        GMAIL_EN_HTML,
    )
    gmail(
        "adv_pasted_canary.eml",
        f"Hi Ana, the oat linen is in. See you soon, Olivia\nmailbot-private-{REF.token}",
        GMAIL_EN,
        GMAIL_EN_HTML,
    )
    gmail(
        "adv_pasted_history.eml",
        "Hi Ana,\n\nDo you still have the blue linen napkins? My sister loved them. "
        "We have more now.\n\nOlivia",
        GMAIL_EN,
        GMAIL_EN_HTML,
    )
    msg = message(mid="CAK7qZ1x-no-quote@mail.gmail.com")
    msg.set_content(
        "Hi Ana,\n\nThe sage linen is in, shall I send swatches?\n\nOlivia\n",
        cte="quoted-printable",
    )
    write("adv_no_quote.eml", msg)
    gmail(
        "adv_quote_cut_short.eml",
        "Hi Ana, the sage linen is in, shall I send swatches? Olivia",
        GMAIL_EN,
        GMAIL_EN_HTML,
        quoted=[*DRAFT_LINES[:8], "[Message clipped]  View entire message"],
    )
    edited = [line.replace("in sage and oat", "in sage, oat and rust") for line in DRAFT_LINES]
    gmail("adv_edited_in_gmail_quote.eml", "", GMAIL_EN, GMAIL_EN_HTML, quoted=edited)
    outlook_plain("adv_edited_in_outlook_copy.eml", "", outlook_block("en"), body=edited)
    inserted = list(DRAFT_LINES)
    at = inserted.index("Hi Ana,")
    inserted[at:at] = ["Hi Ana, rust is back too! Tell me if you want it.", ""]
    outlook_plain("adv_inserted_in_outlook_copy.eml", "", outlook_block("en"), body=inserted)
    outlook_plain(
        "adv_after_outlook_copy.eml",
        "",
        outlook_block("en"),
        after="PS to Ana: the shop is closed on Monday.",
    )
    msg = message(mid="CAK7qZ1x-bottom@mail.gmail.com")
    msg.set_content(
        GMAIL_EN
        + "\n\n"
        + quote(DRAFT_LINES)
        + "\n\nHi Ana, the oat linen is in. Shall I send swatches?\nOlivia\n",
        cte="quoted-printable",
    )
    write("adv_gmail_bottom_post.eml", msg)
    gmail(
        "subject_override.eml",
        "Subject: Spring linen is in\n\nHi Ana,\n\nthe spring linen is in, and the sage is "
        "lovely. Shall I send you swatches?\n\nOlivia",
        GMAIL_EN,
        GMAIL_EN_HTML,
    )
    msg = message(mid="unknown-header-7a@linen.example")
    msg.set_content(
        "Bonjour Ana, le lin sauge est arrivé. Je vous envoie des échantillons ?\n\n"
        "Le 24 nov. 2026 à 07:31, Olivia a écrit :\n\n" + quote(DRAFT_LINES) + "\n",
        cte="quoted-printable",
    )
    write("adv_header_without_tokens.eml", msg)
    msg = message(mid="CAK7qZ1x-no-blank@mail.gmail.com")
    msg.set_content(
        "Hi Ana, the oat linen is in, shall I put some aside?\n"
        + GMAIL_EN
        + "\n\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("adv_header_touching_text.eml", msg)
    msg = message(mid="CAK7qZ1x-rewrapped@mail.gmail.com")
    wrapped = ["─── Reply above this", "line · mailbot ───", *DRAFT_LINES[1:]]
    msg.set_content(
        "Hi Ana, shall I put some sage linen aside for you? Olivia\n\n"
        + GMAIL_EN
        + "\n\n"
        + quote(wrapped)
        + "\n",
        cte="quoted-printable",
    )
    write("marker_rewrapped.eml", msg)
    msg = message(mid="CAK7qZ1x-quoting-customer@mail.gmail.com")
    msg.set_content(
        "Hi Ana,\n\n> Do you still have the blue napkins?\n\nYes, six of them!\n\nOlivia\n\n"
        + GMAIL_EN
        + "\n\n"
        + quote(DRAFT_LINES)
        + "\n",
        cte="quoted-printable",
    )
    write("adv_owner_quotes_a_line.eml", msg)


WRITERS: tuple[Callable[[], None], ...] = (
    gmail_web,
    gmail_apps,
    gmail_html_only,
    outlook_desktop,
    outlook_html,
    outlook_mobile,
    apple,
    thunderbird,
    mutt,
    commands,
    adversarial,
)

if __name__ == "__main__":
    for writer in WRITERS:
        writer()
    print(f"wrote {len(list(HERE.glob('*.eml')))} samples to {HERE}")
