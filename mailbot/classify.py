"""Message -> category, direction, contacts and a short human reason (pure).

The order of checks (the first that fires wins):

1. mailbot's own message (its Message-ID starts with ``MAILBOT_ID_PREFIX``, sent
   from an owner address): to the owner only -> ``internal``; to customers ->
   ``customer`` outbound (a note mailbot sent). Never a command.
2. ``bounce``: a read receipt is ``automated``; then multipart/report, a null
   return path from mailer-daemon/postmaster, delivery-failure subjects.
3. ``automated``: no From, Auto-Submitted other than "no", X-Autoreply /
   X-Autorespond, Precedence auto_reply, out-of-office subjects (with or
   without X-Auto-Response-Suppress), no-reply-like senders, a null return path.
4. ``bulk``: List-Id, List-Unsubscribe, Precedence bulk/list/junk.
5. ``command``: from an owner address and In-Reply-To/References names a
   mailbot id. This comes before ``internal`` because the owner's reply to a
   draft goes from the owner to the owner (or mailbot's address).
6. From an owner address: the recipients that are not owner, internal or
   automated-looking are the contacts (``customer`` outbound); none -> ``internal``.
7. From an internal domain -> ``internal``.
8. Otherwise ``customer`` inbound, with ``opt_out`` from the customer's own words.

Only ``customer`` becomes a touchpoint; the reason is kept so that ``mailbot
customer ADDR`` can explain the decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.models import MAILBOT_ID_PREFIX, Category, Classification, Direction, Mailbox, Message
from mailbot.parse import own_text

__all__ = [
    "Identity",
    "classify",
    "detect_negative",
    "detect_opt_out",
    "is_automated_address",
]


@dataclass(frozen=True)
class Identity:
    """Who the owner is: every address they send from and their colleagues' domains.

    Values are normalised (stripped, lower case) on construction.
    """

    owner_addresses: frozenset[str]
    internal_domains: frozenset[str]
    owner_name: str = ""

    def __post_init__(self) -> None:
        owners = frozenset(a.strip().lower() for a in self.owner_addresses if a.strip())
        domains = frozenset(
            d.strip().lower().lstrip("@").rstrip(".") for d in self.internal_domains if d.strip()
        )
        object.__setattr__(self, "owner_addresses", owners)
        object.__setattr__(self, "internal_domains", domains)

    def is_owner(self, address: str) -> bool:
        address = address.strip().lower()
        if address in self.owner_addresses:
            return True
        base = _without_plus(address)
        return base != address and base in self.owner_addresses

    def is_internal(self, address: str) -> bool:
        domain = _domain(address)
        return bool(domain) and any(
            domain == d or domain.endswith("." + d) for d in self.internal_domains
        )


def _without_plus(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or "+" not in local:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""


def _local(address: str) -> str:
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


# --------------------------------------------------------------------------
# Cues
# --------------------------------------------------------------------------

_NO_REPLY_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|noreply|donotreply|"
    r"no[-_.]?respon[dc]e|nicht[-_.]?antworten|ne[-_.]?pas[-_.]?repondre|"
    r"noreply[-_.+].*|no-reply[-_.+].*|.*[-_.+]no[-_.]?reply|.*[-_.+]noreply|"
    r"auto[-_.]?reply|auto[-_.]?responder|autoresponder)$"
)
_NOTIFY_LOCAL = re.compile(r"^(?:notifications?|notify|alerts?|notification[-_.+].*)$")
_DAEMON_LOCAL = re.compile(
    r"^(?:mailer[-_]?daemon|postmaster|mail[-_]?daemon|bounces?(?:[-_+].*)?)$"
)

_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered\s+mail\s+returned\s+to\s+sender|"
    r"delivery\s+status\s+notification\s*\((?:failure|failed)\)|"
    r"undeliverable\s*:|undelivered\s+mail|undeliverable\s+mail|"
    r"mail\s+delivery\s+(?:failed|failure|system)|returned\s+mail\s*:|failure\s+notice|"
    r"delivery\s+(?:failure|has\s+failed|failed)|message\s+not\s+delivered|"
    r"mail\s+system\s+error|nondeliverable|non-delivery|"
    r"unzustellbar\s*:|nicht\s+zustellbar|benachrichtigung\s+zum\s+übermittlungsstatus\s*\(fehlgeschlagen\)|"
    r"non\s+remis\s*:|non\s+distribuable|notification\s+d'état\s+de\s+(?:la\s+)?remise\s*\(échec\)|"
    r"no\s+se\s+puede\s+entregar\s*:|no\s+entregado|"
    r"non\s+recapitabile\s*:|onbestelbaar\s*:|não\s+é\s+possível\s+entregar\s*:|"
    r"配信不能|配送不能|送信できませんでした)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"^\s*(?:delivery\s+status\s+notification\s*\(delay\)|delayed\s+mail|"
    r"warning:\s*message.{0,40}delayed|delivery\s+delayed)",
    re.IGNORECASE,
)
_READ_RECEIPT_SUBJECT = re.compile(
    r"^\s*(?:read|gelesen|lu|leído|leido|letto|gelezen|lido|read\s+receipt|"
    r"return\s+receipt|lesebestätigung|開封済み|開封確認)\s*[:\uff1a]",
    re.IGNORECASE,
)
_OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(?:automatic\s+reply|auto(?:matic)?[-\s]?reply|autoreply|auto[-\s]?response|"
    r"out\s+of\s+(?:the\s+)?office(?:\s+reply|\s+autoreply)?|away\s+from\s+(?:the\s+)?office|"
    r"abwesenheitsnotiz|automatische\s+antwort|abwesend|"
    r"réponse\s+automatique|absence\s+du\s+bureau|absent(?:e)?\s+du\s+bureau|"
    r"respuesta\s+automática|respuesta\s+automatica|fuera\s+de\s+la\s+oficina|"
    r"risposta\s+automatica|fuori\s+sede|fuori\s+ufficio|"
    r"afwezig|automatisch\s+antwoord|afwezigheidsmelding|"
    r"resposta\s+automática|resposta\s+automatica|ausente\s+do\s+escritório|"
    r"自動応答|自動返信|不在)"
    r"\s*(?:[:\uff1a(\-\u2013\u2014]|$)",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})


def is_automated_address(address: str) -> bool:
    """True for no-reply, notification, mailer-daemon and postmaster style addresses."""
    local = _local(address)
    local = local.split("+", 1)[0] if not local.startswith(("noreply+", "no-reply+")) else local
    return bool(
        _NO_REPLY_LOCAL.match(local) or _NOTIFY_LOCAL.match(local) or _DAEMON_LOCAL.match(local)
    )


def _automated_reason(address: str) -> str:
    local = _local(address)
    if _DAEMON_LOCAL.match(local.split("+", 1)[0]):
        return f"mail system sender {address}"
    if _NOTIFY_LOCAL.match(local):
        return f"notification sender {address}"
    return f"no-reply sender {address}"


def _mailbot_reference(msg: Message) -> str:
    for ref in (msg.in_reply_to, *msg.references):
        if ref.startswith(MAILBOT_ID_PREFIX):
            return ref
    return ""


def _mailbot_kind(message_id: str) -> str:
    rest = message_id[len(MAILBOT_ID_PREFIX) :]
    kind = re.split(r"[.@]", rest, maxsplit=1)[0]
    return kind if kind in ("draft", "digest", "note", "receipt", "question") else "message"


def _customer_recipients(msg: Message, identity: Identity) -> tuple[Mailbox, ...]:
    seen: set[str] = set()
    out: list[Mailbox] = []
    for box in msg.recipients:
        address = box.address
        if (
            address in seen
            or "@" not in address
            or identity.is_owner(address)
            or identity.is_internal(address)
            or is_automated_address(address)
        ):
            continue
        seen.add(address)
        out.append(box)
    return tuple(out)


def _bounce(msg: Message, sender: str) -> str:
    local = _local(sender) if sender else ""
    daemon = bool(local) and bool(_DAEMON_LOCAL.match(local))
    if msg.content_type == "multipart/report":
        return "delivery status report (multipart/report)"
    if msg.return_path == "" and (daemon or not sender):
        return f"null return path from {sender or 'no sender'}"
    if _BOUNCE_SUBJECT.match(msg.subject):
        return f"delivery failure subject {msg.subject[:60]!r}"
    return ""


def _automated(msg: Message, sender: str) -> str:
    if msg.sender is None or not sender:
        return "no From address"
    if msg.auto_submitted and msg.auto_submitted != "no":
        return f"Auto-Submitted: {msg.auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in msg.autoreply_headers:
            return f"{name} header present"
    if msg.precedence == "auto_reply":
        return "Precedence: auto_reply"
    if _OUT_OF_OFFICE_SUBJECT.match(msg.subject):
        if "X-Auto-Response-Suppress" in msg.autoreply_headers:
            return f"X-Auto-Response-Suppress with auto-reply subject {msg.subject[:60]!r}"
        return f"auto-reply subject {msg.subject[:60]!r}"
    if _DELAY_SUBJECT.match(msg.subject):
        return f"delivery delay notice {msg.subject[:60]!r}"
    if is_automated_address(sender):
        return _automated_reason(sender)
    if msg.return_path == "":
        return "null return path (<>)"
    return ""


def _bulk(msg: Message) -> str:
    if msg.list_id:
        return "List-Id header present"
    if msg.list_unsubscribe:
        return "List-Unsubscribe header present"
    if msg.precedence in _BULK_PRECEDENCE:
        return f"Precedence: {msg.precedence}"
    return ""


def classify(msg: Message, identity: Identity) -> Classification:
    """Decide what ``msg`` is; see the module docstring for the order of checks."""
    sender = msg.sender.address if msg.sender is not None else ""
    from_owner = bool(sender) and identity.is_owner(sender)

    if from_owner and msg.message_id.startswith(MAILBOT_ID_PREFIX):
        kind = _mailbot_kind(msg.message_id)
        contacts = _customer_recipients(msg, identity)
        if contacts:
            return Classification(
                Category.CUSTOMER, f"mailbot {kind} to a customer", Direction.OUTBOUND, contacts
            )
        return Classification(
            Category.INTERNAL, f"mailbot's own {kind} to the owner", Direction.OUTBOUND
        )

    direction = Direction.OUTBOUND if from_owner else Direction.INBOUND
    if _READ_RECEIPT_SUBJECT.match(msg.subject):
        return Classification(Category.AUTOMATED, f"read receipt {msg.subject[:60]!r}", direction)
    reason = _bounce(msg, sender)
    if reason:
        return Classification(Category.BOUNCE, reason, direction)
    reason = _automated(msg, sender)
    if reason:
        return Classification(Category.AUTOMATED, reason, direction)
    reason = _bulk(msg)
    if reason:
        return Classification(Category.BULK, reason, direction)

    if from_owner:
        reference = _mailbot_reference(msg)
        if reference:
            kind = _mailbot_kind(reference)
            return Classification(Category.COMMAND, f"reply to a mailbot {kind}", direction)
        contacts = _customer_recipients(msg, identity)
        if contacts:
            return Classification(
                Category.CUSTOMER, "from the owner to a customer", direction, contacts
            )
        return Classification(Category.INTERNAL, _owner_internal_reason(msg, identity), direction)

    if identity.is_internal(sender):
        return Classification(
            Category.INTERNAL, f"from internal domain {_domain(sender)}", direction
        )
    assert msg.sender is not None  # _automated() returned a reason otherwise
    return Classification(
        Category.CUSTOMER,
        "a person writing to the owner",
        direction,
        (msg.sender,),
        opt_out=detect_opt_out(msg.text),
    )


def _owner_internal_reason(msg: Message, identity: Identity) -> str:
    recipients = [box.address for box in msg.recipients]
    if not recipients:
        return "from the owner with no visible recipients"
    if all(identity.is_owner(address) for address in recipients):
        return "from the owner to the owner's own address"
    if any(identity.is_internal(address) for address in recipients):
        return "from the owner to an internal domain"
    return "from the owner to automated addresses only"


# --------------------------------------------------------------------------
# What the customer says
# --------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s*")
_WS = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _WS.sub(" ", text.translate(_APOSTROPHES).lower())


def _customer_words(text: str) -> str:
    """The customer's own words (quotes and signatures dropped), lower case."""
    return _normalise(own_text(text))


class _Phrases:
    """An alternation of phrases, searched fast.

    Python's ``re`` tries every branch of ``\\ba|\\bb|...`` at every position of the
    text; written as ``\\b(?:a|b|...)`` it skips ahead on the branches' first
    characters, about 20 times faster on a few hundred words. Branches that do not
    start with ``\\b`` (Japanese has no word boundaries) go into a second pattern.
    Matches exactly what ``re.compile("|".join(parts))`` matches.
    """

    def __init__(self, parts: list[str]) -> None:
        branches = _top_level_branches("|".join(parts))
        bounded = [b[2:] for b in branches if b.startswith(r"\b")]
        other = [b for b in branches if not b.startswith(r"\b")]
        self.pattern = "|".join(parts)
        self._bounded = re.compile(r"\b(?:" + "|".join(bounded) + ")") if bounded else None
        self._other = re.compile("|".join(other)) if other else None

    def search(self, text: str) -> bool:
        return bool(
            (self._bounded is not None and self._bounded.search(text))
            or (self._other is not None and self._other.search(text))
        )


def _top_level_branches(pattern: str) -> list[str]:
    """Split a regular expression at the ``|`` that are outside groups and classes."""
    out: list[str] = []
    start = depth = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = pattern.index("]", i + 2 if pattern[i + 1:i + 2] in ("]", "^") else i + 1) + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


_THANKS = re.compile(
    r"\b(?:thanks?|thank\s+you|thx|cheers|many\s+thanks|danke|vielen\s+dank|merci|gracias|"
    r"grazie|bedankt|dank\s+je(?:wel)?|obrigad[oa]|perfect|perfekt|parfait|perfecto|perfetto|"
    r"great|lovely|wonderful|super|wunderbar|genial)\b|ありがとう"
)
_ASKS = re.compile(
    r"\?|\b(?:could|can|would|will)\s+you\b|\bplease\b|\bbitte\b|\bpourriez\b|"
    r"\bpodr[ií]a\b|\bpotrebbe\b|\bkunt\s+u\b|\bpoderia\b|\bbut\b|\baber\b|\bmais\b|"
    r"\bpero\b|\bma\b|\bmaar\b|\bmas\b|\bunfortunately\b|\bleider\b"
)
THANKS_ONLY_MAX = 120


def closes_conversation(own_words: str) -> bool:
    """True for a short note that only says thanks ("Thank you, it arrived and looks
    lovely!"): it wants no answer, so it must not count as waiting for one.

    ``own_words`` is the writer's own text (a touchpoint's snippet). Anything longer
    than a line or two, with a question, a request or a "but", still wants an answer.
    """
    words = _normalise(own_words).strip()
    if not words or len(words) > THANKS_ONLY_MAX:
        return False
    return bool(_THANKS.search(words)) and not _ASKS.search(words)


_UNSUBSCRIBE = re.compile(
    r"\bunsubscrib\w*|\bdes?abonn\w*|\bdésabonn\w*|\bdésinscri\w*|\bdesinscri\w*"
    r"|\bdisiscri\w*|\bdescadastr\w*|\buitschrijv\w*|\bschrijf\s+(?:mij|me)\s+uit\b"
)
_THIRD_PARTY = re.compile(r"\b(?:my|his|her|their|another|other|a\s+different)\b")
_SECOND_PARTY = re.compile(
    r"\b(?:your|yours|from\s+you|this\s+(?:list|newsletter|mailing)|these\s+e-?mails?)\b"
)
_OPT_OUT = _Phrases(
    [
        # English
        r"\bstop\s+(?:e-?mailing|mailing|sending|contacting|writing\s+to|messaging|spamming)"
        r"\s+(?:me|us|my\b)",
        r"\bstop\s+sending\s+(?:me\s+)?(?:e-?mails?|mails?|messages?|newsletters?|these|this)",
        r"\b(?:do\s+not|don'?t|dont|never)\s+(?:ever\s+)?(?:e-?mail|contact|write\s+to|message|"
        r"send)\s+(?:me|us)\b(?:.{0,30}\b(?:again|anymore|any\s+more|further|emails?))?",
        r"\bremove\s+(?:me|us|my\s+(?:e-?mail|address|name|details|data|contact))\b"
        r"(?:.{0,40}\b(?:list|mailing|database|newsletter|emails?|system|contacts?))?",
        r"\btake\s+(?:me|us|my\s+(?:e-?mail|address|name))\s+off\b",
        r"\bopt\s+(?:me\s+)?out\b",
        r"\bno\s+(?:more|further)\s+(?:e-?mails?|mails?|messages?|newsletters?|contact)\b",
        r"\bi\s+(?:do\s+not|don'?t|no\s+longer)\s+(?:want|wish)\s+to\s+(?:receive|get|hear)\b",
        r"\bleave\s+me\s+alone\b",
        # German
        r"\babmelden\b|\bmelden\s+sie\s+mich\b.{0,40}\bab\b|\babbestellen\b|\babbestellung\b",
        r"\btragen\s+sie\s+mich\b.{0,40}\baus\b|\baus\s+(?:dem|ihrem|eurem)\s+verteiler\b",
        r"\bkeine\s+(?:e-?mails?|mails|nachrichten|newsletter|werbung|post)\s+mehr\b",
        r"\b(?:bitte\s+)?nicht\s+mehr\s+(?:kontaktieren|anschreiben|schreiben|mailen)\b",
        r"\b(?:kontaktieren|schreiben)\s+sie\s+mir?\s+(?:bitte\s+)?nicht\s+mehr\b",
        r"\blöschen\s+sie\s+meine\s+(?:e-?mail|adresse|daten|kontakt)",
        # French
        r"\bne\s+(?:\w+\s+){0,2}plus\s+(?:\w+\s+)?recevoir\b",
        r"\barr[êe]te[zr]?\s+de\s+m'(?:écrire|ecrire|envoyer|contacter)",
        r"\bne\s+m'(?:écrivez|ecrivez|envoyez|contactez)\s+plus\b|\bne\s+me\s+contactez\s+plus\b",
        r"\b(?:retirez|supprimez|enlevez)-?\s*moi\s+de\b",
        # Spanish
        r"\bdar(?:me|se)?\s+de\s+baja\b|\bdenme\s+de\s+baja\b",
        r"\bno\s+me\s+(?:escriban|escribáis|escribas|envíen|envien|contacten|manden)\s+más\b",
        r"\bno\s+quiero\s+recibir\s+más\b|\bno\s+quiero\s+(?:más|mas)\s+correos\b",
        r"\b(?:eliminarme|borrarme|sacarme|quitarme)\s+de\b",
        # Italian
        r"\bcancellatemi\b|\bcancellami\b|\bcancellarmi\s+dalla\b",
        r"\bnon\s+(?:scrivetemi|scrivermi|contattatemi|contattarmi|inviatemi|mandatemi)\s+più\b",
        r"\bnon\s+voglio\s+più\s+ricevere\b|\b(?:toglietemi|rimuovetemi)\s+dalla\b",
        # Dutch
        r"\bafmelden\b|\bmeld\s+me\s+af\b",
        r"\bgeen\s+(?:e-?mails?|mails|berichten|nieuwsbrieven?)\s+meer\b",
        r"\bhaal\s+(?:me|mij)\s+van\b.{0,30}\blijst\b|\bstop\s+met\s+mailen\b",
        r"\bniet\s+meer\s+(?:mailen|contacteren|benaderen)\b",
        # Portuguese
        r"\bnão\s+quero\s+mais\s+receber\b|\bnao\s+quero\s+mais\s+receber\b",
        r"\bparem\s+de\s+(?:me\s+)?(?:enviar|mandar|escrever)\b",
        r"\b(?:me\s+)?(?:tirem|removam|retirem)(?:-me)?\s+da\s+(?:lista|sua\s+lista)\b",
        r"\bnão\s+me\s+(?:enviem|mandem|contatem|contactem|escrevam)\s+mais\b",
        # Japanese
        r"配信停止|配信を停止|配信不要|メールは不要|メールを送らないで|登録解除|連絡しないで",
    ]
)


def detect_opt_out(text: str) -> bool:
    """True when the customer's own words (not quoted text) ask not to be emailed.

    "unsubscribe" and its translations count unless the sentence is about a
    third party's list ("my bank's newsletter") and not about "your" mail.
    """
    words = _customer_words(text)
    if not words:
        return False
    if _OPT_OUT.search(words):
        return True
    for sentence in _SENTENCE_SPLIT.split(words):
        if not _UNSUBSCRIBE.search(sentence):
            continue
        if _SECOND_PARTY.search(sentence) or not _THIRD_PARTY.search(sentence):
            return True
    return False


_NOT_NEGATIVE = re.compile(
    r"\bno\s+complaints?\b|\bnot\s+(?:at\s+all\s+)?disappointed\b|\bnever\s+disappoint\w*"
    r"|\bwasn'?t\s+disappointed\b|\b(?:not|nothing|wasn'?t|isn'?t)\s+(?:was\s+)?broken\b"
    r"|\bno\s+need\s+(?:for|to)\s+(?:a\s+)?refund\w*|\bnicht\s+enttäuscht\b|\bkeine\s+beschwerde\b"
    r"|\bpas\s+déçue?\b|\bno\s+(?:estoy\s+)?decepcionad[oa]\b|\bnon\s+(?:sono\s+)?delus[oa]\b"
    r"|\bniet\s+teleurgesteld\b|\bcouldn'?t\s+be\s+happier\b|\bnever\s+been\s+happier\b"
)
_NEGATIVE = _Phrases(
    [
        # English
        r"\bcomplain\w*|\bdisappoint\w*|\brefund(?:s|ed)?\b|\bmoney\s+back\b|\bbroken\b",
        r"\bdamaged\b|\bdefective\b|\bfaulty\b|\bangry\b|\bfurious\b|\bupset\b",
        r"\bunacceptable\b|\bnever\s+again\b|\bnever\s+(?:buy|order|shop)\w*\b.{0,30}\bagain\b",
        r"\bnot\s+(?:very\s+|at\s+all\s+)?(?:happy|satisfied|pleased)\b|\bunhappy\b",
        r"\bdissatisfied\b|\bterrible\b|\bawful\b|\bhorrible\b|\bworst\b|\bpoor\s+quality\b",
        r"\bwaste\s+of\s+money\b|\bripped\s+off\b|\bscam\b|\bfed\s+up\b",
        r"\bstill\s+(?:haven'?t|have\s+not|not)\s+(?:received|arrived|got)\b",
        r"\bnever\s+(?:arrived|received|came)\b|\bhasn'?t\s+arrived\b",
        r"\bwrong\s+(?:item|size|colou?r|order|product)\b|\bcancel\s+my\s+order\b",
        # German
        r"\bbeschwer\w*|\benttäusch\w*|\b(?:rück)?erstattung\b|\bgeld\s+zurück\b",
        r"\bkaputt\w*|\bbeschädigt\w*|\bdefekt\w*|\bverärgert\b|\bnie\s+wieder\b",
        r"\bnicht\s+(?:sehr\s+)?zufrieden\b|\bunzufrieden\b|\bschlechte\s+qualität\b",
        r"\bunverschämt\w*|\bfrechheit\b|\breklamation\b|\bärgerlich\b",
        # French
        r"\bplainte\b|\bréclamation\b|\bdéçue?s?\b|\bdécevant\w*|\brembours\w*",
        r"\bcassée?s?\b|\babîmée?s?\b|\bendommagée?s?\b|\bdéfectueu\w*|\ben\s+colère\b",
        r"\bfurieu\w*|\bplus\s+jamais\b|\bpas\s+(?:du\s+tout\s+)?(?:content|satisfait)e?\b",
        r"\bmécontente?\b|\binacceptable\b|\bhonteu\w*",
        # Spanish
        r"\bqueja\b|\breclamación\b|\breclamo\b|\bdecepcionad[oa]\b|\bdecepción\b",
        r"\breembolso\b|\bdevolución\s+del\s+dinero\b|\brot[oa]s?\b|\bdañad[oa]s?\b",
        r"\bdefectuos[oa]s?\b|\benfadad[oa]\b|\benojad[oa]\b|\bnunca\s+más\b",
        r"\bno\s+estoy\s+(?:content[oa]|satisfech[oa])\b|\binsatisfech[oa]\b|\binaceptable\b",
        # Italian
        r"\blamentel\w*|\bdelus[oa]\b|\bdeludente\b|\brimbors\w*|\brott[oi]\b",
        r"\bdanneggiat[oaie]\b|\bdifettos[oaie]\b|\barrabbiat[oa]\b|\bmai\s+più\b",
        r"\bnon\s+sono\s+soddisfatt[oa]\b|\binsoddisfatt[oa]\b|\binaccettabile\b",
        # Dutch
        r"\bklacht\w*|\bteleurgesteld\b|\bterugbetaling\b|\bgeld\s+terug\b|\bkapot\b",
        r"\bbeschadigd\b|\bboos\b|\bnooit\s+meer\b|\bniet\s+tevreden\b|\bontevreden\b",
        r"\bonacceptabel\b",
        # Portuguese
        r"\breclamação\b|\bdesapontad[oa]\b|\bquebrad[oa]\b|\bdanificad[oa]\b",
        r"\bdefeituos[oa]\b|\birritad[oa]\b|\bnunca\s+mais\b|\binsatisfeit[oa]\b",
        r"\bnão\s+estou\s+satisfeit[oa]\b|\binaceitável\b",
        # Japanese
        r"返金|壊れ|破損|不良品|がっかり|残念|二度と|苦情|クレーム|不満|届いていません|届きません",
    ]
)


def detect_negative(text: str) -> bool:
    """True when the customer's own words sound unhappy (complaint, refund, broken, ...)."""
    words = _customer_words(text)
    if not words:
        return False
    return bool(_NEGATIVE.search(_NOT_NEGATIVE.sub(" ", words)))
