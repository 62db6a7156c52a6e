"""A deterministic, realistic owner's mailbox (INBOX and Sent) with a known answer.

The same seed, size and ``now`` give the same bytes.  What is generated:

* about one correspondent per ten messages, over seven years: customers (some of them
  colleagues at the same company, some writing in German, French, Spanish, Italian,
  Dutch, Portuguese or Japanese), newsletters, shops' and services' no-reply mail,
  auto-generated notifications, calendar systems, the owner's own colleagues;
* threads (In-Reply-To, References, quoted replies in the styles of Gmail, Apple Mail,
  Outlook and Thunderbird), started by the customer or by the owner, sometimes Cc'ing a
  customer's colleague;
* text/plain, multipart/alternative, HTML-only, multipart/related with a logo, legacy
  charsets (iso-8859-1, windows-1252 and iso-2022-jp, in headers and bodies), base64,
  quoted-printable and 8bit bodies, and a few messages without a Message-ID;
* attachments of 1-5 MB in under 1% of the messages (plus small invoices and logos);
* newsletters with List-Id and List-Unsubscribe, auto-replies (Auto-Submitted,
  X-Autoreply, Outlook's "Automatic reply"), bounces (multipart/report), calendar
  invitations from people (customer mail) and from systems (not customer mail), the
  owner's notes to self and a few copies of sent mail that the owner Bcc'd to herself.

The answer (:class:`Truth`) is what a correct mailbot must store: one touchpoint per
customer message and direction and customer, where customer mail is mail from a real
person outside the business to the owner (the sender is the contact), or from the owner
to real people outside the business (every such To/Cc recipient is a contact).
Newsletters, auto-replies, bounces, no-reply and notification mail, system calendar
mail, colleagues' mail and notes to self make none.  A message stored twice (the owner's
Bcc to herself) counts once.

Messages are produced lazily in date order (:meth:`MailboxGenerator.mails`), so a
100,000-message mailbox never sits in memory at once.  Line ends are LF, as Dovecot
stores mail in a Maildir; IMAP serves them as CRLF (see :attr:`Mail.imap_size`).
"""

from __future__ import annotations

import base64
import binascii
import html
import random
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime

__all__ = [
    "ALIAS",
    "INTERNAL_DOMAIN",
    "OWNER_NAME",
    "Mail",
    "MailboxGenerator",
    "Truth",
    "live_message",
]

OWNER_NAME = "Olivia Owner"
ALIAS = "shop@linen.example"  # a second owner address (config: owner.addresses)
ALIAS_NAME = "Olivia's Linen"
INTERNAL_DOMAIN = "linen.example"  # config: owner.internal_domains
COLLEAGUES = (("Mia Brandt", "mia@linen.example"), ("Ben Okafor", "ben@linen.example"),
              ("Lars Holm", "lars@linen.example"))
YEARS = 7
LARGE_ATTACHMENT_RATE = 0.008  # per person message: 1-5 MB
INVOICE_RATE = 0.03  # owner messages with a small PDF
NO_ID_RATE = 0.003  # customer messages without a Message-ID

# ------------------------------------------------------------------ people and words

_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "en": (["Emma", "Oliver", "Ava", "Noah", "Sophia", "Liam", "Grace", "Jack", "Chloe",
            "Henry", "Ruby", "Samuel", "Alice", "Thomas", "Isla", "James", "Hannah", "Leo"],
           ["Smith", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright", "Hughes",
            "Green", "Hall", "Baker", "Clarke", "Turner", "Hill", "Moore", "Cooper", "Reid"]),
    "de": (["Jürgen", "Lena", "Matthias", "Sören", "Käthe", "Jörg", "Anna", "Lukas", "Marie",
            "Felix", "Björn", "Greta", "Ute", "Jonas"],
           ["Müller", "Schäfer", "Weiß", "Becker", "Hoffmann", "Krüger", "Schröder", "Wagner",
            "Köhler", "Fischer", "Groß", "Bauer", "Lührs"]),
    "fr": (["Élodie", "François", "Amélie", "Jérôme", "Chloé", "Hélène", "Benoît", "Léa",
            "Cécile", "Gaëtan", "Inès", "Noël"],
           ["Lefèvre", "Dubois", "Girard", "Bérard", "Moreau", "Fournier", "Lambert",
            "Mercier", "Faure", "Rousseau", "Gauthier", "Chevalier"]),
    "es": (["José", "María", "Lucía", "Andrés", "Sofía", "Martín", "Ángela", "Raúl", "Inés"],
           ["García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Muñoz", "Ibáñez"]),
    "it": (["Giulia", "Luca", "Francesca", "Niccolò", "Chiara", "Matteo", "Sara", "Davide"],
           ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno"]),
    "nl": (["Sanne", "Daan", "Femke", "Joost", "Lotte", "Bram", "Ilse", "Sem"],
           ["de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "Smit", "Meijer"]),
    "pt": (["João", "Ana", "Gonçalo", "Inês", "Tiago", "Beatriz", "Luís", "Mariana"],
           ["Silva", "Santos", "Ferreira", "Pereira", "Gonçalves", "Araújo", "Simões"]),
    "ja": (["太郎", "花子", "健", "美咲", "翔", "陽子", "大輔", "由美"],
           ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"]),
}
_JA_ROMAJI = {"太郎": "taro", "花子": "hanako", "健": "ken", "美咲": "misaki", "翔": "sho",
              "陽子": "yoko", "大輔": "daisuke", "由美": "yumi", "佐藤": "sato",
              "鈴木": "suzuki", "高橋": "takahashi", "田中": "tanaka", "伊藤": "ito",
              "渡辺": "watanabe", "山本": "yamamoto", "中村": "nakamura"}
_LANG_WEIGHTS = {"en": 40, "de": 22, "fr": 10, "es": 7, "it": 6, "nl": 6, "pt": 4, "ja": 5}
_FREEMAIL = ("gmail.example", "outlook.example", "yahoo.example", "gmx.example",
             "web.example", "icloud.example", "posteo.example", "hotmail.example")
_COMPANY_WORDS = ("atelier", "studio", "hotel", "cafe", "design", "interiors", "events",
                  "boutique", "living", "haus", "maison", "casa")

_SUBJECTS: dict[str, list[str]] = {
    "en": ["Question about my order", "Linen napkins in blue?", "Delivery to Hamburg",
           "Custom tablecloth size", "Invoice {n}", "Gift wrapping", "Order #{n}",
           "Return of two pillowcases", "Wholesale enquiry", "Thank you!",
           "Restock of the oat colour", "Care instructions", "Samples for our restaurant",
           "Change of address", "Your market stall on Saturday"],
    "de": ["Frage zu meiner Bestellung", "Lieferung nach München", "Tischdecke in Übergröße",
           "Rechnung {n}", "Geschenkverpackung möglich?", "Rücksendung", "Vielen Dank!",
           "Größe der Bettwäsche", "Muster für unser Café", "Bestellung Nr. {n}"],
    "fr": ["Question sur ma commande", "Livraison à Lyon", "Nappe sur mesure", "Facture {n}",
           "Merci beaucoup !", "Retour d'un article", "Disponibilité du lin lavé"],
    "es": ["Pregunta sobre mi pedido", "Envío a Madrid", "Factura {n}", "¡Muchas gracias!",
           "Mantel a medida"],
    "it": ["Domanda sul mio ordine", "Spedizione a Milano", "Fattura {n}", "Grazie mille!",
           "Tovaglia su misura"],
    "nl": ["Vraag over mijn bestelling", "Levering in Utrecht", "Factuur {n}",
           "Hartelijk dank!", "Tafelkleed op maat"],
    "pt": ["Pergunta sobre a minha encomenda", "Entrega em Lisboa", "Fatura {n}",
           "Muito obrigada!", "Toalha de mesa à medida"],
    "ja": ["注文について", "配送について", "請求書 {n}", "ありがとうございました",
           "テーブルクロスのサイズ"],
}
_GREETING = {
    "en": ["Hi Olivia,", "Hello,", "Dear Olivia,", "Hi there,"],
    "de": ["Hallo Olivia,", "Liebe Frau Owner,", "Guten Tag,"],
    "fr": ["Bonjour Olivia,", "Bonjour,", "Chère Olivia,"],
    "es": ["Hola Olivia,", "Buenos días,"],
    "it": ["Ciao Olivia,", "Buongiorno,"],
    "nl": ["Hoi Olivia,", "Beste Olivia,"],
    "pt": ["Olá Olivia,", "Bom dia,"],
    "ja": ["オリビア様", "お世話になっております。"],
}
_CUSTOMER_LINES = {
    "en": ["I ordered the washed linen duvet cover last week and wondered when it ships.",
           "Do you still have the napkins in the dusty blue, or only in oat?",
           "Could you make a tablecloth of 320 x 160 cm for our long table?",
           "The sheets arrived today and they are lovely, thank you so much.",
           "We would like to order 40 aprons for the café, is there a trade price?",
           "Is it possible to pick the order up at your studio on Friday?",
           "My sister loved the gift, so I\u2019d like to order the same set again.",
           "The invoice says €120 but the shop said €110, could you check?",
           "How should I wash the heavy linen the first time?",
           "I will be away next week, so please send it after the 14th."],
    "de": ["Ich habe letzte Woche die Bettwäsche bestellt, wann wird sie verschickt?",
           "Gibt es die Servietten noch in Blau oder nur noch in Hafer?",
           "Könnten Sie eine Tischdecke mit 320 x 160 cm für uns nähen?",
           "Die Laken sind heute angekommen und wunderschön, vielen Dank!",
           "Wir möchten 40 Schürzen für das Café bestellen \u2013 gibt es einen Händlerpreis?",
           "Kann ich die Bestellung am Freitag im Atelier abholen?",
           "Die Rechnung sagt 120 € statt 110 €, könnten Sie das prüfen?",
           "Wie wasche ich das schwere Leinen beim ersten Mal?"],
    "fr": ["J'ai commandé la housse de couette la semaine dernière, quand part-elle ?",
           "Avez-vous encore les serviettes en bleu, ou seulement en avoine ?",
           "Pourriez-vous faire une nappe de 320 x 160 cm pour notre grande table ?",
           "Les draps sont arrivés aujourd'hui, ils sont magnifiques, merci !",
           "La facture indique 120 € au lieu de 110 €, pouvez-vous vérifier ?",
           "Comment laver le lin épais la première fois ?"],
    "es": ["Pedí la funda nórdica la semana pasada, ¿cuándo se envía?",
           "¿Todavía tienen las servilletas en azul?",
           "¿Podrían hacer un mantel de 320 x 160 cm para nuestra mesa?",
           "Las sábanas llegaron hoy y son preciosas, ¡gracias!"],
    "it": ["Ho ordinato il copripiumino la settimana scorsa, quando parte?",
           "Avete ancora i tovaglioli in blu?",
           "Potreste fare una tovaglia di 320 x 160 cm per il nostro tavolo?",
           "Le lenzuola sono arrivate oggi e sono bellissime, grazie!"],
    "nl": ["Ik heb vorige week het dekbedovertrek besteld, wanneer wordt het verzonden?",
           "Hebben jullie de servetten nog in het blauw?",
           "Kunnen jullie een tafelkleed van 320 x 160 cm maken?",
           "De lakens zijn vandaag aangekomen en ze zijn prachtig, dank je!"],
    "pt": ["Encomendei a capa de edredão na semana passada, quando é enviada?",
           "Ainda têm os guardanapos em azul?",
           "Poderiam fazer uma toalha de 320 x 160 cm para a nossa mesa?",
           "Os lençóis chegaram hoje e são lindos, obrigada!"],
    "ja": ["先週注文した掛け布団カバーはいつ発送されますか。",
           "青いナプキンはまだありますか。",
           "三百二十センチのテーブルクロスを作っていただけますか。",
           "本日シーツが届きました。とても素敵です。"],
}
_CLOSING = {
    "en": ["Best,\n{first}", "Thanks!\n{first}", "Kind regards,\n{full}", "Cheers,\n{first}"],
    "de": ["Viele Grüße\n{first}", "Mit freundlichen Grüßen\n{full}", "LG {first}"],
    "fr": ["Bien cordialement,\n{full}", "Merci !\n{first}"],
    "es": ["Un saludo,\n{first}"],
    "it": ["Cordiali saluti,\n{full}"],
    "nl": ["Groetjes,\n{first}"],
    "pt": ["Cumprimentos,\n{first}"],
    "ja": ["よろしくお願いいたします。\n{last}"],
}
_OWNER_LINES = {
    "en": ["Thank you for your order! It ships tomorrow with DHL.",
           "Yes, the dusty blue is back in stock since Monday.",
           "I can make that size; it takes about two weeks.",
           "Of course, Friday after 10 works well.",
           "For 40 aprons I can offer 15% off the list price.",
           "You are right, I corrected the invoice; the new one is attached.",
           "Wash it at 40 degrees with a mild detergent and dry it on the line.",
           "So glad you like them!"],
    "de": ["Vielen Dank für Ihre Bestellung! Sie geht morgen mit DHL raus.",
           "Ja, das Blau ist seit Montag wieder da.",
           "Diese Größe kann ich nähen, das dauert etwa zwei Wochen.",
           "Freitag ab 10 Uhr passt gut.",
           "Sie haben recht, ich habe die Rechnung korrigiert."],
    "fr": ["Merci pour votre commande ! Elle part demain.",
           "Oui, le bleu est de retour depuis lundi.",
           "Je peux faire cette taille, il faut compter deux semaines."],
}
_OPT_OUT_LINES = {"en": "Please remove me from your mailing list.",
                  "de": "Bitte tragen Sie mich aus dem Verteiler aus.",
                  "fr": "Merci de me retirer de votre liste."}
_OWNER_SIGNATURE = "Olivia\n\n-- \nOlivia's Linen · hand-made linen, Berlin\nhttps://linen.example"

_NEWSLETTERS = (
    ("Linen Weekly", "news@weekly.example", "Linen Weekly #{n}: what is new this week"),
    ("Textile Trade News", "newsletter@textiletrade.example", "Trade news {n}"),
    ("Etsy Seller Digest", "hello@sellers.etsy.example", "Your seller digest for week {n}"),
    ("Berlin Makers", "team@berlinmakers.example", "Makers market: dates for {n}"),
    ("Fabric Outlet", "offers@fabricoutlet.example", "{n}% off all linen this weekend"),
    ("Design Journal", "digest@designjournal.example", "The Design Journal, issue {n}"),
    ("Stoff & Faden", "info@stoffundfaden.example", "Neu im Shop: Leinen {n}"),
)
_SYSTEM: tuple[tuple[str, str, dict[str, str], str], ...] = (
    # (name, address, extra headers, subject)
    ("Shopify", "no-reply@shopify.example", {}, "[Olivia's Linen] Order #{n} placed"),
    ("DHL Paket", "noreply@dhl.example", {}, "Your parcel {n} has been delivered"),
    ("Stripe", "notifications@stripe.example", {}, "Payout of EUR {n} is on its way"),
    ("Sparkasse", "donotreply@bank.example", {}, "Kontoauszug {n} verfügbar"),
    ("Google", "no-reply@accounts.google.example", {}, "Security alert for your account"),
    ("Hosting", "alerts@hosting.example", {}, "Disk usage at {n}% on linen.example"),
    ("GitLab", "gitlab@git.linen.example",
     {"Auto-Submitted": "auto-generated", "X-GitLab-Project": "shop"},
     "shop | Pipeline #{n} has failed"),
    ("Jira", "jira@linen.atlassian.example",
     {"Auto-Submitted": "auto-generated", "Precedence": "bulk"},
     "[JIRA] (SHOP-{n}) Update product photos"),
    ("Zoom", "no-reply@zoom.example", {}, "Cloud recording is now available"),
)
_CALENDAR_SYSTEMS = (
    ("Calendly", "notifications@calendly.example", "New Event: {who} - 30 Minute Fitting"),
    ("Booking System", "calendar-noreply@booking.example",
     "Invitation: Fitting with {who} @ {when}"),
    ("Zoom", "no-reply@zoom.example", "Meeting invitation: Linen workshop {n}"),
)
_DOMAINS_OOO = {
    "en": ("Automatic reply: {s}", "Out of Office: {s}", "Away until {d}"),
    "de": ("Abwesenheitsnotiz: {s}", "Automatische Antwort: {s}"),
    "fr": ("Réponse automatique : {s}",),
}
_OOO_TEXT = {
    "en": "I am out of the office until {d} with limited access to email.\n"
          "For urgent matters please call the office.",
    "de": "Ich bin bis zum {d} nicht im Büro und lese meine E-Mails nur eingeschränkt.",
    "fr": "Je suis absente jusqu'au {d} avec un accès limité à mes e-mails.",
}

# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class Mail:
    """One message as stored in one folder, with what mailbot must make of it."""

    folder: str  # "INBOX" or "Sent"
    raw: bytes  # LF line ends
    when: datetime  # INTERNALDATE (the Maildir file's mtime)
    kind: str
    message_id: str  # without <>; "" when the message has none
    subject: str
    touchpoints: tuple[tuple[str, str], ...]  # (direction "in"/"out", contact address)
    seen: bool
    large_attachment: bool = False
    seq: int = 0  # the message's number in the plan (copies share it)

    @property
    def imap_size(self) -> int:
        """RFC822.SIZE as IMAP reports it (CRLF line ends)."""
        return len(self.raw) + self.raw.count(b"\n")


@dataclass
class Truth:
    """What the generator made, and what a correct mailbot stores from it."""

    messages: Counter[str] = field(default_factory=Counter)  # per folder
    kinds: Counter[str] = field(default_factory=Counter)  # per generator kind
    bytes_disk: int = 0
    bytes_imap: int = 0
    large_attachments: int = 0
    correspondents: set[str] = field(default_factory=set)
    # expected touchpoint key -> (kind, subject, folder); key = (message id, direction,
    # contact), with "noid:<n>" standing in for a missing Message-ID
    keys: dict[tuple[str, str, str], tuple[str, str, str]] = field(default_factory=dict)
    # every Message-ID -> (kind, folder, subject), to explain what mailbot stored
    by_id: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def add(self, mail: Mail) -> None:
        self.messages[mail.folder] += 1
        self.kinds[mail.kind] += 1
        self.bytes_disk += len(mail.raw)
        self.bytes_imap += mail.imap_size
        self.large_attachments += mail.large_attachment
        if mail.message_id:
            self.by_id.setdefault(mail.message_id, (mail.kind, mail.folder, mail.subject))
        for direction, contact in mail.touchpoints:
            mid = mail.message_id or f"noid:{mail.seq}"
            self.keys.setdefault((mid, direction, contact), (mail.kind, mail.subject,
                                                             mail.folder))

    @property
    def total(self) -> int:
        return sum(self.messages.values())

    @property
    def touchpoints(self) -> int:
        return len(self.keys)

    def per_customer(self) -> Counter[str]:
        return Counter(contact for _mid, _d, contact in self.keys)

    @property
    def customers(self) -> int:
        return len(self.per_customer())

    def summary(self) -> dict[str, object]:
        return {
            "messages": self.total,
            "inbox": self.messages["INBOX"],
            "sent": self.messages["Sent"],
            "bytes_disk": self.bytes_disk,
            "bytes_imap": self.bytes_imap,
            "large_attachments": self.large_attachments,
            "correspondents": len(self.correspondents),
            "expected_touchpoints": self.touchpoints,
            "expected_customers": self.customers,
            "kinds": dict(sorted(self.kinds.items())),
        }


# ------------------------------------------------------------------ plan


@dataclass
class _Person:
    name: str
    address: str
    lang: str
    charset: str  # body charset the person's client writes
    client: str  # gmail | apple | outlook | thunderbird | mobile_html | legacy | ja
    weight: float
    start: datetime
    end: datetime
    coworkers: list[int] = field(default_factory=list)

    @property
    def first(self) -> str:
        return self.name.split(" ")[0] if self.lang != "ja" else self.name[2:] or self.name

    @property
    def last(self) -> str:
        return self.name.split(" ")[-1] if self.lang != "ja" else self.name[:2]


@dataclass
class _Spec:
    """One planned message (rendered to bytes only when it is yielded)."""

    kind: str
    when: datetime
    folders: tuple[str, ...]
    sender: tuple[str, str]  # (name, address)
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    message_id: str
    client: str
    lang: str
    charset: str
    own: str = ""  # the writer's own words (greeting, lines, closing)
    parent: _Spec | None = None  # the message replied to (quoted) or bounced
    references: tuple[str, ...] = ()
    touchpoints: tuple[tuple[str, str], ...] = ()
    attachment: tuple[str, int] | None = None  # (kind, size)
    headers: dict[str, str] = field(default_factory=dict)
    seen: bool = True
    seq: int = 0


def _ascii_fold(text: str) -> str:
    out = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in out.lower() if ch.isalnum() or ch in ".-")


class MailboxGenerator:
    """Plans a mailbox of ``messages`` messages for ``owner`` ending at ``now``."""

    def __init__(self, owner: str, messages: int, *, seed: int = 20240601,
                 now: datetime | None = None) -> None:
        if messages < 10:
            raise ValueError("a generated mailbox needs at least 10 messages")
        self.owner = owner.lower()
        self.size = messages
        self.seed = seed
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.start = self.now - timedelta(days=365 * YEARS)
        self.rng = random.Random(seed)
        self.truth = Truth()
        self._ids: set[str] = set()
        self._counter = 0
        self._people = self._make_people()
        self._specs = self._plan()

    # -- people

    def _make_people(self) -> list[_Person]:
        rng = self.rng
        n = max(8, round(self.size / 10))
        langs = list(_LANG_WEIGHTS)
        weights = list(_LANG_WEIGHTS.values())
        people: list[_Person] = []
        used: set[str] = set()
        for _attempt in range(50 * n):  # bounded; each pass nearly always adds a person
            if len(people) >= n:
                break
            lang = rng.choices(langs, weights)[0]
            firsts, lasts = _NAMES[lang]
            first, last = rng.choice(firsts), rng.choice(lasts)
            if lang == "ja":
                name = f"{last}{first}"
                local = f"{_JA_ROMAJI[first]}.{_JA_ROMAJI[last]}"
            else:
                name = f"{first} {last}"
                local = f"{_ascii_fold(first)}.{_ascii_fold(last.replace(' ', ''))}"
            company = rng.random() < 0.3 and len(people) + 1 < n
            slug = _JA_ROMAJI[last] if lang == "ja" else _ascii_fold(last.replace(" ", ""))
            domain = (f"{slug}-{rng.choice(_COMPANY_WORDS)}"
                      f"{rng.randrange(100)}.example" if company else rng.choice(_FREEMAIL))
            team = [(name, local)]
            if company:  # two to four people at the same company
                for _ in range(rng.randrange(1, 4)):
                    f2, l2 = rng.choice(firsts), rng.choice(lasts)
                    if lang == "ja":
                        team.append((f"{l2}{f2}", f"{_JA_ROMAJI[f2]}.{_JA_ROMAJI[l2]}"))
                    else:
                        team.append((f"{f2} {l2}",
                                     f"{_ascii_fold(f2)}.{_ascii_fold(l2.replace(' ', ''))}"))
            start = self.start + timedelta(seconds=rng.uniform(
                0, (self.now - self.start).total_seconds() - 3 * 86400))
            life = timedelta(days=min(rng.expovariate(1 / 700), 365 * YEARS))
            end = min(start + life + timedelta(days=3), self.now - timedelta(hours=2))
            members: list[int] = []
            for pname, plocal in team:
                address = f"{plocal}@{domain}"
                if not company and address in used:
                    address = f"{plocal}{rng.randrange(10, 9999)}@{domain}"
                if address in used:
                    continue
                used.add(address)
                client, charset = self._client_for(lang)
                members.append(len(people))
                people.append(_Person(
                    name=pname, address=address, lang=lang, charset=charset, client=client,
                    weight=rng.paretovariate(1.2), start=start, end=end,
                ))
            for i in members:
                people[i].coworkers = [j for j in members if j != i]
        return people

    def _client_for(self, lang: str) -> tuple[str, str]:
        rng = self.rng
        if lang == "ja":
            return ("ja", "iso-2022-jp") if rng.random() < 0.6 else ("gmail", "utf-8")
        r = rng.random()
        if r < 0.30:
            return "gmail", "utf-8"
        if r < 0.50:
            return "apple", "utf-8"
        if r < 0.72:
            return "outlook", "windows-1252" if rng.random() < 0.25 else "utf-8"
        if r < 0.82:
            return "thunderbird", "iso-8859-1" if rng.random() < 0.4 else "utf-8"
        if r < 0.90:
            return "mobile_html", "utf-8"
        return "legacy", rng.choice(("iso-8859-1", "windows-1252"))

    # -- plan

    def _new_id(self, client: str, domain: str) -> str:
        rng = self.rng
        while True:
            if client == "gmail":
                tail = base64.b64encode(rng.randbytes(30), b"+_").decode().rstrip("=")
                mid = f"CA{tail}@mail.gmail.com"
            elif client == "outlook":
                host = (f"AM{rng.randrange(1, 9)}PR0{rng.randrange(1, 9)}"
                        f"MB{rng.randrange(1000, 9999)}")
                mid = (f"{host}{rng.randbytes(8).hex().upper()}@{host}"
                       f".eurprd0{rng.randrange(1, 9)}.prod.outlook.com")
            elif client in ("apple", "owner"):
                u = rng.randbytes(16).hex().upper()
                mid = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}@{domain}"
            elif client == "legacy":
                mid = (f"000{rng.randbytes(5).hex()}$${rng.randbytes(4).hex()}$$"
                       f"{rng.randbytes(4).hex()}@PC{rng.randrange(100, 999)}")
            elif client == "ja":
                mid = f"{rng.randrange(10**13, 10**14)}.{rng.randbytes(4).hex()}@{domain}"
            else:
                u = rng.randbytes(16).hex()
                mid = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}@{domain}"
            if mid not in self._ids:
                self._ids.add(mid)
                return mid

    def _plan(self) -> list[_Spec]:
        rng = self.rng
        specs: list[_Spec] = []
        people = self._people
        order = list(range(len(people)))
        rng.shuffle(order)
        weights = [p.weight for p in people]
        kinds = ("thread", "newsletter", "system", "calendar_system", "internal")
        kind_weights = (52, 23, 15, 2, 8)
        first_pass = iter(order)
        for _event in range(50 * self.size):  # bounded; each event nearly always adds mail
            if len(specs) >= self.size:
                break
            kind = rng.choices(kinds, kind_weights)[0]
            if kind == "thread":
                who = next(first_pass, None)
                if who is None:
                    who = rng.choices(range(len(people)), weights)[0]
                specs.extend(self._thread(who))
            elif kind == "newsletter":
                specs.append(self._newsletter())
            elif kind == "system":
                specs.append(self._system())
            elif kind == "calendar_system":
                specs.append(self._calendar_system())
            else:
                specs.extend(self._internal())
        # the last event may overshoot; a copy counts as a message of its own
        out: list[_Spec] = []
        count = 0
        for spec in specs:
            if count + len(spec.folders) > self.size:
                if count < self.size:
                    spec.folders = spec.folders[: self.size - count]
                else:
                    break
            out.append(spec)
            count += len(spec.folders)
        out.sort(key=lambda s: (s.when, s.seq))
        return out

    def _rand_time(self, lo: datetime, hi: datetime) -> datetime:
        span = max((hi - lo).total_seconds(), 60.0)
        return (lo + timedelta(seconds=self.rng.uniform(0, span))).replace(microsecond=0)

    def _seq(self) -> int:
        self._counter += 1
        return self._counter

    def _seen(self, when: datetime) -> bool:
        return when < self.now - timedelta(days=30) or self.rng.random() < 0.7

    def _owner_box(self, alias: bool) -> tuple[str, str]:
        return (ALIAS_NAME, ALIAS) if alias else (OWNER_NAME, self.owner)

    def _customer_text(self, p: _Person, reply: bool) -> str:
        rng = self.rng
        lines = _CUSTOMER_LINES[p.lang]
        body = [rng.choice(_GREETING[p.lang]), ""]
        body += rng.sample(lines, k=min(len(lines), rng.randrange(1, 4)))
        if rng.random() < 0.002 and p.lang in _OPT_OUT_LINES:
            body.append(_OPT_OUT_LINES[p.lang])
        body += ["", rng.choice(_CLOSING[p.lang]).format(first=p.first, full=p.name,
                                                         last=p.last)]
        if rng.random() < 0.3 and not reply:
            body += ["", "-- ", p.name, f"+49 30 {rng.randrange(1000000, 9999999)}"]
        return "\n".join(body)

    def _owner_text(self, p: _Person) -> str:
        rng = self.rng
        lang = p.lang if p.lang in _OWNER_LINES else "en"
        lines = _OWNER_LINES[lang]
        hello = {"en": f"Hi {p.first},", "de": f"Hallo {p.first},",
                 "fr": f"Bonjour {p.first},"}[lang]
        bye = {"en": "Best wishes,", "de": "Herzliche Grüße", "fr": "Bien à vous,"}[lang]
        body = [hello, "", *rng.sample(lines, k=rng.randrange(1, 3)), "", bye,
                _OWNER_SIGNATURE]
        return "\n".join(body)

    def _subject(self, lang: str) -> str:
        return self.rng.choice(_SUBJECTS[lang]).format(n=self.rng.randrange(1000, 99999))

    def _maybe_attachment(self, owner: bool) -> tuple[str, int] | None:
        rng = self.rng
        if rng.random() < LARGE_ATTACHMENT_RATE:
            return ("large", rng.randrange(1_000_000, 5_000_000))
        if owner and rng.random() < INVOICE_RATE:
            return ("invoice", rng.randrange(30_000, 150_000))
        return None

    def _thread(self, who: int) -> list[_Spec]:
        rng = self.rng
        p = self._people[who]
        length = rng.choices(range(1, 9), (25, 35, 18, 10, 5, 3, 2, 2))[0]
        when = self._rand_time(p.start, p.end)
        customer_turn = rng.random() < 0.75
        via_alias = rng.random() < 0.2
        subject = self._subject(p.lang)
        specs: list[_Spec] = []
        refs: list[str] = []
        invite = customer_turn and rng.random() < 0.03
        for i in range(length):
            if when > self.now - timedelta(minutes=30):
                break
            parent = specs[-1] if specs else None
            subj = subject if i == 0 else _reply_prefix(p.lang if customer_turn else "en",
                                                        rng) + subject
            cc: list[tuple[str, str]] = []
            if customer_turn:
                no_id = rng.random() < NO_ID_RATE
                # now and then a customer writes to a colleague with the owner in Cc
                to_team = rng.choice(COLLEAGUES) if rng.random() < 0.03 else None
                if p.coworkers and rng.random() < 0.1:
                    q = self._people[rng.choice(p.coworkers)]
                    cc.append((q.name, q.address))
                spec = _Spec(
                    kind="invite_person" if invite and i == 0 else "customer_in",
                    when=when, folders=("INBOX",), sender=(p.name, p.address),
                    to=[self._owner_box(via_alias)] if not to_team else [to_team],
                    cc=cc if not to_team else [*cc, self._owner_box(via_alias)], subject=subj,
                    message_id="" if no_id else self._new_id(p.client, p.address.split("@")[1]),
                    client=p.client, lang=p.lang, charset=p.charset,
                    own=self._customer_text(p, parent is not None), parent=parent,
                    references=tuple(refs[-10:]),
                    touchpoints=(("in", p.address),),
                    attachment=self._maybe_attachment(False), seen=self._seen(when),
                    seq=self._seq(),
                )
                self.truth.correspondents.add(p.address)
            else:
                to = [(p.name, p.address)]
                if p.coworkers and rng.random() < 0.1:
                    q = self._people[rng.choice(p.coworkers)]
                    cc.append((q.name, q.address))
                if rng.random() < 0.05:
                    cc.append(rng.choice(COLLEAGUES))
                copy = rng.random() < 0.01  # the owner Bcc'd herself
                spec = _Spec(
                    kind="customer_out", when=when,
                    folders=("Sent", "INBOX") if copy else ("Sent",),
                    sender=self._owner_box(via_alias), to=to, cc=cc, subject=subj,
                    message_id=self._new_id("owner", "linen.example" if via_alias
                                            else self.owner.split("@")[1]),
                    client="owner_iphone" if rng.random() < 0.25 else "owner",
                    lang=p.lang, charset="utf-8", own=self._owner_text(p), parent=parent,
                    references=tuple(refs[-10:]),
                    touchpoints=tuple(("out", a) for _n, a in to + cc
                                      if not a.endswith("@" + INTERNAL_DOMAIN)),
                    attachment=self._maybe_attachment(True), seq=self._seq(),
                )
                self.truth.correspondents.update(a for _n, a in to + cc)
            if not spec.message_id and parent is None and i == 0 and length > 1:
                spec.message_id = self._new_id(p.client, p.address.split("@")[1])
            specs.append(spec)
            if spec.message_id:
                refs.append(spec.message_id)
            if not customer_turn:
                specs.extend(self._after_owner(p, spec))
            when = when + timedelta(minutes=3) + timedelta(hours=rng.expovariate(1 / 18))
            customer_turn = not customer_turn if rng.random() < 0.85 else customer_turn
        return specs

    def _after_owner(self, p: _Person, sent: _Spec) -> list[_Spec]:
        """An out-of-office reply or a bounce that the owner's message may cause."""
        rng = self.rng
        when = sent.when + timedelta(seconds=rng.randrange(5, 600))
        r = rng.random()
        if r < 0.04:
            lang = p.lang if p.lang in _DOMAINS_OOO else "en"
            back = (when + timedelta(days=rng.randrange(3, 20))).strftime("%d.%m.%Y")
            style = rng.choice(("auto_submitted", "outlook", "x_autoreply"))
            headers: dict[str, str] = {}
            subject = rng.choice(_DOMAINS_OOO[lang]).format(s=sent.subject, d=back)
            if style == "auto_submitted":
                headers = {"Auto-Submitted": "auto-replied", "Return-Path": "<>"}
            elif style == "outlook":
                headers = {"Auto-Submitted": "auto-generated",
                           "X-Auto-Response-Suppress": "All",
                           "X-MS-Exchange-Inbox-Rules-Loop": p.address}
                subject = f"Automatic reply: {sent.subject}"
            else:
                headers = {"X-Autoreply": "yes"}
                subject = f"Abwesenheitsnotiz: {sent.subject}" if lang == "de" else subject
            return [_Spec(
                kind="auto_reply", when=when, folders=("INBOX",), sender=(p.name, p.address),
                to=[sent.sender], cc=[], subject=subject,
                message_id=self._new_id(p.client, p.address.split("@")[1]), client="plain",
                lang=lang, charset="utf-8", own=_OOO_TEXT[lang].format(d=back), parent=sent,
                references=(sent.message_id,), headers=headers, seen=self._seen(when),
                seq=self._seq(),
            )]
        if r < 0.055:
            style = rng.choice(("postfix", "gmail", "exchange"))
            sender = {"postfix": ("Mail Delivery System", "MAILER-DAEMON@mx.example.test"),
                      "gmail": ("Mail Delivery Subsystem", "mailer-daemon@googlemail.example"),
                      "exchange": ("Microsoft Outlook", "postmaster@outlook.example")}[style]
            subject = {"postfix": "Undelivered Mail Returned to Sender",
                       "gmail": "Delivery Status Notification (Failure)",
                       "exchange": f"Undeliverable: {sent.subject}"}[style]
            return [_Spec(
                kind="bounce", when=when, folders=("INBOX",), sender=sender, to=[sent.sender],
                cc=[], subject=subject, message_id=self._new_id("other", "mx.example.test"),
                client="bounce", lang="en", charset="us-ascii", parent=sent,
                headers={"Return-Path": "<>"}, seen=self._seen(when), seq=self._seq(),
            )]
        return []

    def _newsletter(self) -> _Spec:
        rng = self.rng
        name, addr, subject = rng.choice(_NEWSLETTERS)
        when = self._rand_time(self.start, self.now - timedelta(hours=1))
        domain = addr.split("@")[1]
        headers = {"List-Unsubscribe": f"<mailto:unsubscribe-{rng.randrange(10**8)}@{domain}>, "
                                       f"<https://{domain}/u/{rng.randbytes(8).hex()}>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                   "Return-Path": f"<bounce-{rng.randbytes(6).hex()}@mail.{domain}>"}
        if rng.random() < 0.8:
            headers["List-Id"] = f"{name} <{rng.randrange(10**6)}.list-id.{domain}>"
        if rng.random() < 0.3:
            headers["Precedence"] = "bulk"
        self.truth.correspondents.add(addr)
        return _Spec(
            kind="newsletter", when=when, folders=("INBOX",), sender=(name, addr),
            to=[(OWNER_NAME, self.owner)], cc=[], subject=subject.format(n=rng.randrange(1, 500)),
            message_id=self._new_id("other", f"mail.{domain}"), client="newsletter", lang="en",
            charset="utf-8", headers=headers, seen=self._seen(when), seq=self._seq(),
        )

    def _system(self) -> _Spec:
        rng = self.rng
        name, addr, extra, subject = rng.choice(_SYSTEM)
        when = self._rand_time(self.start, self.now - timedelta(hours=1))
        self.truth.correspondents.add(addr)
        headers = dict(extra)
        headers["Return-Path"] = f"<bounces+{rng.randrange(10**6)}@em.{addr.split('@')[1]}>"
        return _Spec(
            kind="no_reply" if "Auto-Submitted" not in extra else "notification", when=when,
            folders=("INBOX",), sender=(name, addr),
            to=[rng.choice(((OWNER_NAME, self.owner), (ALIAS_NAME, ALIAS)))], cc=[],
            subject=subject.format(n=rng.randrange(10, 99999)),
            message_id=self._new_id("other", addr.split("@")[1]), client="system", lang="en",
            charset="utf-8", headers=headers, seen=self._seen(when), seq=self._seq(),
        )

    def _calendar_system(self) -> _Spec:
        rng = self.rng
        name, addr, subject = rng.choice(_CALENDAR_SYSTEMS)
        when = self._rand_time(self.start, self.now - timedelta(hours=1))
        who = rng.choice(self._people)
        self.truth.correspondents.add(addr)
        return _Spec(
            kind="calendar_system", when=when, folders=("INBOX",), sender=(name, addr),
            to=[(OWNER_NAME, self.owner)], cc=[],
            subject=subject.format(who=who.name, when=format_datetime(when)[:22],
                                   n=rng.randrange(1, 999)),
            message_id=self._new_id("other", addr.split("@")[1]), client="calendar_system",
            lang="en", charset="utf-8", headers={"Return-Path": f"<{addr}>"},
            seen=self._seen(when), seq=self._seq(),
        )

    def _internal(self) -> list[_Spec]:
        rng = self.rng
        when = self._rand_time(self.start, self.now - timedelta(hours=1))
        colleague = rng.choice(COLLEAGUES)
        owner = (OWNER_NAME, self.owner)
        r = rng.random()
        folders: tuple[str, ...]
        lines = rng.choice(("Can you cover the market stall on Saturday?",
                            "The new linen delivery is in the back room.",
                            "Reminder: order more thread and labels.",
                            "Photos for the shop are in the shared folder."))
        if r < 0.45:
            sender, to, folders, kind = colleague, [owner], ("INBOX",), "internal_in"
        elif r < 0.8:
            sender, to, folders, kind = owner, [colleague], ("Sent",), "internal_out"
        else:
            sender, to, folders, kind = owner, [owner], ("Sent", "INBOX"), "note_to_self"
        self.truth.correspondents.add(colleague[1])
        return [_Spec(
            kind=kind, when=when, folders=folders, sender=sender, to=to, cc=[],
            subject=rng.choice(("Saturday", "Delivery", "Note", "Photos", "Todo")),
            message_id=self._new_id("owner" if sender == owner else "apple", INTERNAL_DOMAIN),
            client="owner", lang="en", charset="utf-8", own=f"{lines}\n\nO.",
            seen=self._seen(when) or sender == owner, seq=self._seq(),
        )]

    # -- output

    def mails(self) -> Iterator[Mail]:
        """Every message, oldest first, rendered to bytes; fills :attr:`truth` as it goes."""
        for spec in self._specs:
            raw = _render(spec, self.rng)
            large = spec.attachment is not None and spec.attachment[0] == "large"
            for folder in spec.folders:
                seen = True if folder == "Sent" else spec.seen
                mail = Mail(folder=folder, raw=raw, when=spec.when, kind=spec.kind,
                            message_id=spec.message_id, subject=spec.subject,
                            touchpoints=spec.touchpoints, seen=seen, large_attachment=large,
                            seq=spec.seq)
                self.truth.add(mail)
                yield mail

    def pick_customers(self, n: int) -> list[tuple[str, str, str]]:
        """N (name, address, lang) of customers who already wrote, for live mail."""
        have = sorted({c for _m, _d, c in self.truth.keys})
        people = [p for p in self._people if p.address in have] or self._people
        rng = random.Random(self.seed + 1)
        return [(p.name, p.address, p.lang) for p in rng.sample(people, min(n, len(people)))]


def _reply_prefix(lang: str, rng: random.Random) -> str:
    if lang == "de":
        return rng.choice(("AW: ", "Re: "))
    if lang == "fr":
        return rng.choice(("RE : ", "Re: "))
    return rng.choice(("Re: ", "RE: ", "Re: "))


# ------------------------------------------------------------------ rendering


def _hdr(value: str, charset: str = "utf-8") -> str:
    if value.isascii():
        return value
    cs = charset if charset not in ("us-ascii", "") else "utf-8"
    try:
        value.encode(_codec(cs))
    except UnicodeEncodeError:
        cs = "utf-8"
    return Header(value, cs, maxlinelen=76).encode(linesep="\n")


def _codec(charset: str) -> str:
    return {"windows-1252": "cp1252", "iso-2022-jp": "iso2022_jp"}.get(charset, charset)


_SPECIALS = set('()<>[]:;@\\,."')


def _addr(box: tuple[str, str], charset: str = "utf-8") -> str:
    name, address = box
    if not name:
        return address
    if not name.isascii():
        return f"{_hdr(name, charset)} <{address}>"
    if any(ch in _SPECIALS for ch in name) or "'" in name:
        return f'"{name}" <{address}>'
    return f"{name} <{address}>"


def _addrs(boxes: list[tuple[str, str]], charset: str = "utf-8") -> str:
    return ",\n ".join(_addr(b, charset) for b in boxes)


def _encode(text: str, charset: str, cte: str) -> bytes:
    data = text.encode(_codec(charset), errors="replace")
    if cte == "quoted-printable":
        return binascii.b2a_qp(data, istext=True)
    if cte == "base64":
        return base64.encodebytes(data)
    return data


def _leaf(ctype: str, text: str, charset: str, cte: str, extra: str = "") -> bytes:
    params = f"; charset={charset}" if charset else ""
    head = f"Content-Type: {ctype}{params}{extra}\nContent-Transfer-Encoding: {cte}\n\n"
    body = _encode(text, charset or "us-ascii", cte)
    if not body.endswith(b"\n"):
        body += b"\n"
    return head.encode() + body


def _binary(ctype: str, name: str, data: bytes, inline_id: str = "") -> bytes:
    if inline_id:
        disp = f"Content-Disposition: inline; filename={name}\nContent-ID: <{inline_id}>\n"
    else:
        disp = f'Content-Disposition: attachment;\n filename="{name}"\n'
    return (f'Content-Type: {ctype}; name="{name}"\n{disp}'
            "Content-Transfer-Encoding: base64\n\n").encode() + base64.encodebytes(data)


def _multipart(subtype: str, parts: list[bytes], rng: random.Random, extra: str = ""
               ) -> tuple[str, bytes]:
    boundary = f"----=_Part_{rng.randrange(10**9)}_{rng.randbytes(6).hex()}"
    body = b"".join(b"--" + boundary.encode() + b"\n" + p + b"\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\n"
    return f'multipart/{subtype}; boundary="{boundary}"{extra}', body


def _fold_ids(ids: tuple[str, ...]) -> str:
    return "\n ".join(f"<{i}>" for i in ids)


def _quote_text(spec: _Spec, depth: int = 0) -> str:
    """The full plain text of SPEC (its own words plus what it quotes)."""
    text = spec.own
    parent = spec.parent
    if parent is None or depth > 6 or spec.kind in ("bounce", "auto_reply"):
        return text
    prev = _quote_text(parent, depth + 1)[:2000]
    name, addr = parent.sender
    date = format_datetime(parent.when)
    if spec.client == "outlook":
        block = (f"\n\n________________________________\nFrom: {name} <{addr}>\n"
                 f"Sent: {date}\nTo: {_addr(parent.to[0])}\nSubject: {parent.subject}\n\n"
                 + prev)
        return text + block
    if spec.lang == "de":
        attribution = f"Am {parent.when:%d.%m.%Y um %H:%M} schrieb {name} <{addr}>:"
    elif spec.lang == "fr":
        attribution = f"Le {parent.when:%d/%m/%Y à %H:%M}, {name} <{addr}> a écrit :"
    elif spec.lang == "ja":
        attribution = f"{parent.when:%Y年%m月%d日 %H:%M} {name} <{addr}>:"
    else:
        attribution = f"On {date}, {name} <{addr}> wrote:"
    quoted = "\n".join("> " + line if line else ">" for line in prev.splitlines())
    return f"{text}\n\n{attribution}\n{quoted}"


def _html_of(text: str, style: str) -> str:
    lines = text.splitlines()
    if style == "outlook":
        paras = "".join(
            f'<p class="MsoNormal"><span style="font-size:11.0pt">{html.escape(line) or "&nbsp;"}'
            "</span></p>\n" for line in lines)
        return (
            '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-'
            'com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word">\n<head>\n'
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
            '<meta name="Generator" content="Microsoft Word 15 (filtered medium)">\n'
            "<style><!--\n/* Font Definitions */\n@font-face\n\t{font-family:\"Cambria Math\";"
            "\n\tpanose-1:2 4 5 3 5 4 6 3 2 4;}\n@font-face\n\t{font-family:Calibri;\n\t"
            "panose-1:2 15 5 2 2 2 4 3 2 4;}\n/* Style Definitions */\np.MsoNormal, "
            "li.MsoNormal, div.MsoNormal\n\t{margin:0cm;\n\tfont-size:11.0pt;\n\t"
            "font-family:\"Calibri\",sans-serif;\n\tmso-fareast-language:EN-US;}\n"
            "a:link, span.MsoHyperlink\n\t{mso-style-priority:99;\n\tcolor:#0563C1;\n\t"
            "text-decoration:underline;}\nspan.EmailStyle17\n\t{mso-style-type:personal-"
            "compose;\n\tfont-family:\"Calibri\",sans-serif;\n\tcolor:windowtext;}\n"
            ".MsoChpDefault\n\t{mso-style-type:export-only;\n\tfont-family:\"Calibri\","
            "sans-serif;}\n@page WordSection1\n\t{size:612.0pt 792.0pt;\n\tmargin:70.85pt "
            "70.85pt 2.0cm 70.85pt;}\ndiv.WordSection1\n\t{page:WordSection1;}\n--></style>"
            "\n</head>\n<body lang=\"DE\" link=\"#0563C1\" vlink=\"#954F72\" style=\"word-"
            f"wrap:break-word\">\n<div class=\"WordSection1\">\n{paras}</div>\n</body>\n</html>\n")
    quote_at = next((i for i, line in enumerate(lines) if line.startswith(">")), len(lines))
    own = lines[:quote_at]
    if quote_at < len(lines) and own and own[-1]:
        attribution, own = own[-1], own[:-1]
    else:
        attribution = ""
    quoted = [line.lstrip(">").lstrip() for line in lines[quote_at:]]
    divs = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in own)
    quote = ""
    if quoted:
        inner = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in quoted)
        quote = (f'<br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
                 f"{html.escape(attribution)}<br></div><blockquote class=\"gmail_quote\" "
                 'style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
                 f'padding-left:1ex">{inner}</blockquote></div>')
    if style == "apple":
        return ('<html><head><meta http-equiv="content-type" content="text/html; '
                'charset=utf-8"></head><body style="overflow-wrap: break-word; '
                '-webkit-nbsp-mode: space; line-break: after-white-space;">'
                f"{divs}{quote}</body></html>\n")
    if style == "mobile":
        paras = "".join(f"<p>{html.escape(line)}</p>" for line in own if line)
        return f"<html><body>{paras}{quote}</body></html>\n"
    return f'<div dir="ltr">{divs}</div>{quote}\n'


def _newsletter_html(spec: _Spec, rng: random.Random) -> tuple[str, str]:
    blocks = []
    plain = [spec.subject, ""]
    for i in range(rng.randrange(6, 20)):
        title = f"Story {i + 1}: linen, weaving and the {rng.randrange(1900, 2030)} season"
        link = f"https://click.{spec.sender[1].split('@')[1]}/t/{rng.randbytes(12).hex()}"
        blocks.append(
            '<tr><td style="padding:16px 24px;font-family:Helvetica,Arial,sans-serif;'
            'font-size:15px;line-height:22px;color:#333333">'
            f'<img src="https://img.example/{rng.randbytes(8).hex()}.jpg" width="552" '
            f'alt="" style="display:block;border:0"><h2 style="margin:12px 0">'
            f"{html.escape(title)}</h2><p>{'Lorem ipsum dolor sit amet. ' * rng.randrange(4, 12)}"
            f'</p><a href="{link}" style="color:#1a73e8">Read more</a></td></tr>\n')
        plain += [title, link, ""]
    unsub = f"https://{spec.sender[1].split('@')[1]}/unsubscribe/{rng.randbytes(10).hex()}"
    body = ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}'
            "table{border-collapse:collapse}</style></head><body><center>"
            '<table width="600" cellpadding="0" cellspacing="0" border="0">\n'
            + "".join(blocks)
            + f'<tr><td><a href="{unsub}">Unsubscribe</a></td></tr></table></center>'
            f'<img src="https://t.example/o/{rng.randbytes(16).hex()}.gif" width="1" '
            'height="1"></body></html>\n')
    plain.append(f"Unsubscribe: {unsub}")
    return body, "\n".join(plain)


def _ics(spec: _Spec, organizer: tuple[str, str], attendee: str, method: str) -> str:
    start = spec.when + timedelta(days=3)
    return (
        "BEGIN:VCALENDAR\nPRODID:-//Bench//Calendar 1.0//EN\nVERSION:2.0\n"
        f"METHOD:{method}\nBEGIN:VEVENT\nDTSTART:{start:%Y%m%dT%H%M%SZ}\n"
        f"DTEND:{start + timedelta(minutes=30):%Y%m%dT%H%M%SZ}\n"
        f"DTSTAMP:{spec.when:%Y%m%dT%H%M%SZ}\nORGANIZER;CN={organizer[0]}:mailto:{organizer[1]}\n"
        f"UID:{spec.message_id or spec.seq}\nATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;"
        f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{attendee}\n"
        f"SUMMARY:{spec.subject[:60]}\nSTATUS:CONFIRMED\nSEQUENCE:0\nEND:VEVENT\n"
        "END:VCALENDAR\n")


def _trace_headers(spec: _Spec, rng: random.Random) -> list[str]:
    """What the receiving side adds to inbound mail: Return-Path, Received, DKIM..."""
    addr = spec.sender[1]
    domain = addr.split("@")[1].lower()
    date = format_datetime(spec.when)
    rp = spec.headers.get("Return-Path", f"<{addr}>")
    out = [f"Return-Path: {rp}", f"Delivered-To: {spec.to[0][1]}"]
    ip = f"198.51.100.{rng.randrange(1, 254)}"
    out.append(f"Received: from mail.{domain} (mail.{domain} [{ip}])\n\tby mx.example.test "
               f"(Postfix) with ESMTPS id {rng.randbytes(5).hex().upper()}\n\tfor "
               f"<{spec.to[0][1]}>; {date}")
    out.append(f"Received: by mail.{domain} with SMTP id {rng.randbytes(8).hex()};\n\t{date}")
    if spec.client in ("gmail", "outlook", "newsletter", "system", "apple"):
        sig = base64.b64encode(rng.randbytes(180)).decode()
        out.append(f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; "
                   "s=s1;\n\th=from:to:subject:date:message-id:mime-version;\n\t"
                   f"bh={base64.b64encode(rng.randbytes(32)).decode()};\n\t"
                   f"b={sig[:70]}\n\t {sig[70:140]}\n\t {sig[140:]}")
        out.append(f"Authentication-Results: mx.example.test;\n\tdkim=pass header.d={domain};"
                   f"\n\tspf=pass smtp.mailfrom={domain}")
    return out


def _render(spec: _Spec, rng: random.Random) -> bytes:
    """Bytes of SPEC as the owner's mailbox holds them (LF line ends)."""
    charset = spec.charset
    inbound = spec.folders[0] == "INBOX" and spec.kind not in ("note_to_self",)
    head: list[str] = _trace_headers(spec, rng) if inbound and spec.kind != "customer_out" \
        else []
    head.append(f"From: {_addr(spec.sender, charset)}")
    if spec.to:
        head.append(f"To: {_addrs(spec.to, charset)}")
    if spec.cc:
        head.append(f"Cc: {_addrs(spec.cc, charset)}")
    head.append(f"Subject: {_hdr(spec.subject, charset)}")
    head.append(f"Date: {format_datetime(spec.when.astimezone(_tz_for(spec)))}")
    if spec.message_id:
        head.append(f"Message-ID: <{spec.message_id}>")
    parent = spec.parent
    if parent is not None and parent.message_id and spec.kind != "bounce":
        head.append(f"In-Reply-To: <{parent.message_id}>")
        refs = spec.references or (parent.message_id,)
        head.append(f"References: {_fold_ids(refs)}")
    for k, v in spec.headers.items():
        if k != "Return-Path":
            head.append(f"{k}: {v}")
    head.append("MIME-Version: 1.0")
    ctype, body = _body(spec, rng)
    head += _client_headers(spec, rng)
    head.append(f"Content-Type: {ctype}")
    return ("\n".join(head) + "\n\n").encode() + body


def _tz_for(spec: _Spec) -> timezone:
    offsets = {"ja": 9, "en": 0, "pt": 0, "de": 1, "fr": 1, "es": 1, "it": 1, "nl": 1}
    hours = offsets.get(spec.lang, 1)
    if spec.client.startswith("owner"):
        hours = 1
    return timezone(timedelta(hours=hours))


def _client_headers(spec: _Spec, rng: random.Random) -> list[str]:
    c = spec.client
    if c == "gmail":
        return [f"X-Gm-Message-State: {base64.b64encode(rng.randbytes(40)).decode()}"]
    if c == "outlook":
        return ["X-MS-Has-Attach: " + ("yes" if spec.attachment else ""),
                f"Thread-Index: {base64.b64encode(rng.randbytes(22)).decode()}",
                "Content-Language: en-US", "X-MS-TNEF-Correlator:"]
    if c == "apple":
        return ["X-Mailer: Apple Mail (2.3774.600.62)"]
    if c == "owner":
        return ["X-Mailer: Apple Mail (2.3774.600.62)"]
    if c == "owner_iphone":
        return ["X-Mailer: iPhone Mail (21E236)"]
    if c == "thunderbird":
        return ["User-Agent: Mozilla Thunderbird"]
    if c == "legacy":
        return ["X-Mailer: Microsoft Outlook Express 6.00.2900.5512", "X-Priority: 3"]
    if c == "ja":
        return ["X-Mailer: Becky! ver. 2.75.04 [ja]"]
    return []


def _body(spec: _Spec, rng: random.Random) -> tuple[str, bytes]:
    kind, c, cs = spec.kind, spec.client, spec.charset
    if kind == "bounce":
        return _bounce_body(spec, rng)
    if kind == "newsletter":
        page, plain = _newsletter_html(spec, rng)
        return _multipart("alternative", [
            _leaf("text/plain", plain, "utf-8", "quoted-printable"),
            _leaf("text/html", page, "utf-8", "quoted-printable")], rng)
    if kind in ("no_reply", "notification"):
        text = (f"{spec.subject}\n\nThis is an automated message, please do not reply.\n"
                f"Reference: {rng.randbytes(6).hex()}\n")
        page = "<html><body>" + "".join(f"<p>{html.escape(line)}</p>"
                                        for line in text.splitlines() if line) + \
            "<table>" + "<tr><td>item</td><td>1</td></tr>" * rng.randrange(5, 40) + \
            "</table></body></html>\n"
        return _multipart("alternative", [_leaf("text/plain", text, "utf-8", "7bit"),
                                          _leaf("text/html", page, "utf-8", "quoted-printable")],
                          rng)
    if kind == "calendar_system":
        text = f"{spec.subject}\n\nAdd it to your calendar with the attached invitation.\n"
        ics = _ics(spec, spec.sender, spec.to[0][1], "REQUEST")
        alt = _multipart("alternative", [
            _leaf("text/plain", text, "utf-8", "7bit"),
            _leaf("text/html", f"<html><body><p>{html.escape(text)}</p></body></html>",
                  "utf-8", "7bit"),
            _leaf("text/calendar", ics, "utf-8", "7bit", "; method=REQUEST")], rng)
        return _multipart("mixed", [
            f"Content-Type: {alt[0]}\n\n".encode() + alt[1],
            _binary("application/ics", "invite.ics", ics.encode())], rng)

    text = _quote_text(spec)
    if c in ("plain", "owner_iphone", "ja", "thunderbird", "legacy") or \
            (c == "owner" and kind.startswith("internal")) or kind == "note_to_self":
        if c == "owner_iphone":
            text = text.replace(_OWNER_SIGNATURE, "Olivia\n\nSent from my iPhone")
        if c == "ja":
            main = _leaf("text/plain", text, cs, "7bit")
        elif c == "thunderbird":
            cte = "8bit" if cs != "us-ascii" and rng.random() < 0.6 else "quoted-printable"
            main = _leaf("text/plain", text, cs, cte, "; format=flowed")
        elif c == "legacy" and rng.random() < 0.4:  # HTML-only, windows-1252 or latin-1
            main = _leaf("text/html", _html_of(text, "mobile"), cs, "quoted-printable")
        else:
            main = _leaf("text/plain", text, cs if c == "legacy" else "utf-8",
                         "quoted-printable")
        ctype, body = _split(main)
    elif c == "mobile_html":
        ctype, body = _split(_leaf("text/html", _html_of(text, "mobile"), cs, "quoted-printable"))
    else:
        style = {"gmail": "gmail", "apple": "apple", "owner": "apple",
                 "outlook": "outlook"}.get(c, "gmail")
        plain_cte = "base64" if c == "outlook" and rng.random() < 0.3 else "quoted-printable"
        html_cte = "base64" if c == "outlook" and rng.random() < 0.3 else "quoted-printable"
        ctype, body = _multipart("alternative", [
            _leaf("text/plain", text, cs, plain_cte),
            _leaf("text/html", _html_of(text, style), cs, html_cte)], rng)
        if c in ("outlook", "apple") and rng.random() < 0.2:  # a logo in the signature
            logo = _binary("image/png", "image001.png", rng.randbytes(rng.randrange(4000, 30000)),
                           inline_id=f"image001.png@01D{rng.randbytes(6).hex().upper()}")
            ctype, body = _multipart("related", [f"Content-Type: {ctype}\n\n".encode() + body,
                                                 logo], rng, '; type="multipart/alternative"')
    if kind == "invite_person":
        ics = _ics(spec, spec.sender, spec.to[0][1], "REQUEST")
        ctype, body = _multipart("mixed", [
            f"Content-Type: {ctype}\n\n".encode() + body,
            _leaf("text/calendar", ics, "utf-8", "7bit", "; method=REQUEST"),
            _binary("application/ics", "invite.ics", ics.encode())], rng)
    if spec.attachment is not None:
        what, size = spec.attachment
        if what == "large":
            ctype_a, name = rng.choice((("application/pdf", "catalogue.pdf"),
                                        ("image/jpeg", "IMG_4031.JPG"),
                                        ("application/zip", "photos.zip")))
        else:
            ctype_a, name = "application/pdf", f"Invoice-{rng.randrange(1000, 9999)}.pdf"
        ctype, body = _multipart("mixed", [
            f"Content-Type: {ctype}\n\n".encode() + body,
            _binary(ctype_a, name, rng.randbytes(size))], rng)
    return ctype, body


def _split(leaf: bytes) -> tuple[str, bytes]:
    """A single-part body: its Content-Type line goes to the message header."""
    head, _, body = leaf.partition(b"\n\n")
    lines = head.decode().split("\n")
    ctype = lines[0].removeprefix("Content-Type: ")
    rest = "".join(line + "\n" for line in lines[1:])
    return ctype + "\n" + rest.rstrip("\n"), body


def _bounce_body(spec: _Spec, rng: random.Random) -> tuple[str, bytes]:
    sent = spec.parent
    assert sent is not None
    rcpt = sent.to[0][1]
    orig = (f"From: {_addr(sent.sender)}\nTo: {_addr(sent.to[0])}\n"
            f"Subject: {_hdr(sent.subject)}\nDate: {format_datetime(sent.when)}\n"
            f"Message-ID: <{sent.message_id}>\nMIME-Version: 1.0\n")
    text = (
        "This is the mail system at host mx.example.test.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        f"<{rcpt}>: host mx.{rcpt.split('@')[1]}[203.0.113.7] said: 550 5.1.1\n"
        f"    <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox\n"
        "    table (in reply to RCPT TO command)\n")
    status = (
        f"Reporting-MTA: dns; mx.example.test\nX-Postfix-Queue-ID: "
        f"{rng.randbytes(5).hex().upper()}\nArrival-Date: {format_datetime(sent.when)}\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\n"
        "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n")
    parts = [
        b"Content-Description: Notification\n" + _leaf("text/plain", text, "us-ascii", "7bit"),
        b"Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        + status.encode(),
        b"Content-Description: Undelivered Message Headers\n"
        b"Content-Type: text/rfc822-headers\n\n" + orig.encode(),
    ]
    return _multipart("report", parts, rng, "; report-type=delivery-status")


def live_message(owner: str, customer: tuple[str, str, str], n: int, now: datetime,
                 *, html_part: bool = False) -> tuple[str, bytes]:
    """A customer's new message for the live-latency test: (Message-ID, raw bytes)."""
    name, address, _lang = customer
    mid = f"live-{n}-{now:%Y%m%d%H%M%S}.{address.split('@')[0]}@bench.example"
    text = (f"Hi Olivia,\n\nquick question number {n}: is the oat linen back in stock?\n\n"
            f"Thanks,\n{name.split(' ')[0]}\n")
    head = (f"From: {_addr((name, address))}\nTo: {OWNER_NAME} <{owner}>\n"
            f"Subject: Quick question {n}\nDate: {format_datetime(now)}\n"
            f"Message-ID: <{mid}>\nMIME-Version: 1.0\n")
    if html_part:
        rng = random.Random(n)
        ctype, body = _multipart("alternative", [
            _leaf("text/plain", text, "utf-8", "quoted-printable"),
            _leaf("text/html", _html_of(text, "gmail"), "utf-8", "quoted-printable")], rng)
    else:
        ctype, body = _split(_leaf("text/plain", text, "utf-8", "quoted-printable"))
    return mid, (head + f"Content-Type: {ctype}\n").encode() + body
