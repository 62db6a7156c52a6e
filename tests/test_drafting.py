"""Drafts: templates per reason, LLM output checks, and the LLM engine against a real
local HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailbot.drafting import (
    Drafter,
    LLMEngine,
    LLMError,
    TemplateEngine,
    Voice,
    build_messages,
    bundled_prompts_dir,
    check_output,
    clean_subject,
    first_name_of,
    how_long_phrase,
    note_subject,
    parse_completion,
    template_name,
)
from mailbot.errors import ConfigError
from mailbot.models import Direction, Pick, Reason, Touchpoint

NOW = datetime(2025, 11, 24, 6, 30, tzinfo=UTC)
VOICE = Voice(
    owner_name="Olivia Owner",
    signature="Olivia\nOlivia's Linen",
    business="Olivia's Linen",
)


def touch(
    contact: str, days_ago: int, subject: str, snippet: str, direction: Direction
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


def make_pick(
    reason: Reason = Reason.LAPSED,
    name: str = "Ana Lima",
    contact: str = "ana@lima.example",
    **kw: Any,
) -> Pick:
    recent = kw.pop(
        "recent",
        (
            touch(
                contact,
                63,
                "Re: spring order",
                "Do you still have the blue ones?",
                Direction.INBOUND,
            ),
            touch(
                contact,
                64,
                "spring order",
                "Hi, here is the list you asked for.",
                Direction.OUTBOUND,
            ),
        ),
    )
    return Pick(
        contact=contact,
        name=name,
        reason=reason,
        why=kw.pop("why", "Ana usually writes every 3 weeks; quiet for 9 (last: 'spring order')."),
        score=1.0,
        recent=recent,
        monthly_counts=(0, 1, 2, 0, 3, 1, 0, 0, 2, 1, 0, 0),
        reply_to_subject=kw.pop("reply_to_subject", "Re: spring order"),
        facts=kw.pop("facts", {"first_contact": "2023-11-20"}),
        **kw,
    )


OTHER = make_pick(
    Reason.UNANSWERED,
    name="Tomasz Bakerfield",
    contact="tomasz@bakerfield.example",
    why="Tomasz's email from Thursday is still unanswered (4 business days).",
    recent=(
        touch(
            "tomasz@bakerfield.example",
            4,
            "invoice 7731",
            "Zebra quilt order for the Harrogate shop",
            Direction.INBOUND,
        ),
    ),
    reply_to_subject="invoice 7731",
)


# ------------------------------------------------------------------------ templates


@pytest.fixture(scope="module")
def engine() -> TemplateEngine:
    return TemplateEngine(bundled_prompts_dir())


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_renders_a_short_personal_note(engine: TemplateEngine, reason: Reason) -> None:
    text = engine.draft(make_pick(reason), VOICE, now=NOW)
    assert text.startswith("Hi Ana,")
    assert "Olivia\nOlivia's Linen" in text
    assert not re.search(r"[{}\[\]<>]", text), text
    assert "mailbot" not in text.lower()
    assert "None" not in text
    assert 3 <= len([line for line in text.splitlines() if line.strip()]) <= 6
    assert len(text) < 600
    # the private reason never reaches the customer
    assert "every 3 weeks" not in text
    assert check_output(text, make_pick(reason), VOICE) == text


@pytest.mark.parametrize("reason", list(Reason))
def test_templates_render_without_name_subject_or_now(
    engine: TemplateEngine, reason: Reason
) -> None:
    pick = make_pick(reason, name="", recent=(), reply_to_subject="", facts={})
    text = engine.draft(pick, Voice(owner_name="Olivia Owner", signature=""))
    assert text.startswith("Hello,")
    assert text.endswith("Olivia Owner")
    assert '""' not in text and "()" not in text


def test_template_facts(engine: TemplateEngine) -> None:
    unanswered = engine.draft(make_pick(Reason.UNANSWERED), VOICE, now=NOW)
    assert '"spring order"' in unanswered and "Re:" not in unanswered
    lapsed = engine.draft(make_pick(Reason.LAPSED), VOICE, now=NOW)
    assert "a couple of months" in lapsed
    milestone = engine.draft(make_pick(Reason.MILESTONE), VOICE, now=NOW)
    assert "2 years since you first wrote" in milestone
    assert "a while" in engine.draft(make_pick(Reason.LAPSED), VOICE)  # no clock read
    # rank's facts stand in for the clock and take precedence for the anniversary
    ranked = {"quiet_days": "20", "milestone": "anniversary", "years": "3"}
    assert "a couple of weeks" in engine.draft(make_pick(facts=ranked), VOICE)
    assert "3 years since" in engine.draft(make_pick(Reason.MILESTONE, facts=ranked), VOICE)
    exchanges = {"milestone": "exchanges", "exchanges": "5"}
    assert "coming back again" in engine.draft(make_pick(Reason.MILESTONE, facts=exchanges), VOICE)


def test_missing_template_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "lapsed.txt.j2").write_text("{{ greeting }}\n\nHello there.\n\n{{ signature }}\n")
    eng = TemplateEngine(tmp_path)
    assert eng.draft(make_pick(Reason.LAPSED), VOICE).startswith("Hi Ana,")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "welcome.txt.j2"))):
        eng.draft(make_pick(Reason.WELCOME), VOICE)
    with pytest.raises(ConfigError, match="missing"):
        eng.check()


def test_broken_templates_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "lapsed.txt.j2").write_text("{{ greeting }\n")
    (tmp_path / "welcome.txt.j2").write_text("{{ greting }}\n")
    (tmp_path / "milestone.txt.j2").write_text("Dear [Customer], {{ signature }}\n")
    eng = TemplateEngine(tmp_path)
    with pytest.raises(ConfigError, match=r"lapsed\.txt\.j2 line 1"):
        eng.draft(make_pick(Reason.LAPSED), VOICE)
    with pytest.raises(ConfigError, match=r"welcome\.txt\.j2.*greting"):
        eng.draft(make_pick(Reason.WELCOME), VOICE)
    with pytest.raises(ConfigError, match="placeholder"):
        eng.draft(make_pick(Reason.MILESTONE), VOICE)
    with pytest.raises(ConfigError, match="does not exist"):
        TemplateEngine(tmp_path / "nope")


def test_bundled_prompts_are_complete(engine: TemplateEngine) -> None:
    engine.check()
    for reason in Reason:
        assert (bundled_prompts_dir() / template_name(reason)).is_file()
    assert (bundled_prompts_dir() / "llm_system.txt").is_file()


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("Ana Lima", "Ana"),
        ("Lima, Ana", "Ana"),
        ("ANA LIMA", "Ana"),
        ("dr. priya shah", "Priya"),
        ("Mrs Jane O'Neil", "Jane"),
        ("ana@lima.example", ""),
        ("Lima Interiors Ltd", ""),
        ("J. Smith", ""),
        ("", ""),
        ("José", "José"),
    ],
)
def test_first_name_of(name: str, first: str) -> None:
    assert first_name_of(name) == first


def test_small_helpers() -> None:
    assert clean_subject("Re: AW: Fwd: spring order") == "spring order"
    assert clean_subject("RE[2]: x") == "x"
    assert len(clean_subject("word " * 40)) <= 60
    assert how_long_phrase(None) == "a while"
    assert how_long_phrase(20) == "a couple of weeks"
    assert how_long_phrase(700) == "over a year"
    assert note_subject(make_pick(Reason.UNANSWERED), "Olivia Owner") == "Re: spring order"
    assert note_subject(make_pick(Reason.LAPSED), "Olivia Owner") == "Hello from Olivia"
    assert note_subject(make_pick(Reason.WELCOME), "Olivia Owner") == "Thank you, Ana"


# ---------------------------------------------------------------------- output checks

GOOD = "Hi Ana,\n\nYou came to mind today and I wanted to say hello.\n\nOlivia\nOlivia's Linen"


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f"  \n{GOOD}\n\n  ",
        f'"{GOOD}"',
        f"“{GOOD}”",
        f"```\n{GOOD}\n```",
        f"<think>She is quiet; say hi.</think>\n{GOOD}",
    ],
)
def test_check_output_accepts_and_cleans(text: str) -> None:
    assert check_output(text, make_pick(), VOICE) == GOOD


def test_check_output_allows_the_customers_own_address() -> None:
    text = GOOD.replace("hello.", "hello. Your new login is ANA@lima.example.")
    assert check_output(text, make_pick(), VOICE) == text


def test_check_output_appends_missing_signature() -> None:
    text = "Hi Ana,\n\nYou came to mind today and I wanted to say hello. Best wishes!"
    assert check_output(text, make_pick(), VOICE) == f"{text}\n\nOlivia\nOlivia's Linen"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n  ",
        '""',
        "Hi Ana!",  # too short
        "Hi Ana,\n\n" + "It was lovely to hear from you. " * 40 + "\n\nOlivia",  # too long
        "Hi [Name],\n\nYou came to mind today and I wanted to say hello.\n\nOlivia",
        "Hi {name},\n\nYou came to mind today and I wanted to say hello.\n\nOlivia",
        "Hi {{ first_name }},\n\nYou came to mind today and I wanted to say hello.\n\nOlivia",
        "Hi <name>,\n\nYou came to mind today and I wanted to say hello.\n\nOlivia",
        "Hi Ana,\n\nYou came to mind today. Write to bob@evil.example any time.\n\nOlivia",
        "Hi Ana,\n\nYou came to mind today. Write to OLIVIA@linen.example.\n\nOlivia",
        "Subject: Hello\n\nHi Ana,\n\nYou came to mind today and I wanted to say hello.\n\nOlivia",
        "**Subject:** Hello\nHi Ana, you came to mind today and I wanted to say hello.\nOlivia",
        "Hi Ana,\n\nYou came to mind today: see https://linen.example/sale for offers.\n\nOlivia",
        "Hi Ana,\n\nYou came to mind today and I wanted to say hello. TODO add more.\n\nOlivia",
        "Hi Ana,\n\nI noticed you usually writes every 3 weeks; quiet for 9 now.\n\nOlivia",
        "Hi Ana,\n\nmailbot suggested that I write to you today. Hello!\n\nOlivia",
    ],
)
def test_check_output_rejects(text: str) -> None:
    assert check_output(text, make_pick(), VOICE) is None


# ------------------------------------------------------------------- prompt building


def test_build_messages_hold_only_this_customer() -> None:
    pick = make_pick(Reason.UNANSWERED)
    messages = build_messages(pick, VOICE, "SYSTEM")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "SYSTEM"
    user = messages[1]["content"]
    assert "Ana Lima" in user and "Greet them as: Ana" in user
    assert "Do you still have the blue ones?" in user
    assert "spring order" in user and pick.why in user
    assert "first_contact: 2023-11-20" in user
    assert "Olivia\nOlivia's Linen" in user
    assert "ana@lima.example" not in user  # no address to copy into the note
    for other in ("Tomasz", "bakerfield", "Zebra quilt"):
        assert other not in user


def test_parse_completion() -> None:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})
    assert parse_completion(body.encode()) == "hi"
    for bad in (b"{", b"\xff\xfe", b"{}", b'{"choices": []}', b'{"choices": [{"message": {}}]}'):
        with pytest.raises(LLMError):
            parse_completion(bad)
    with pytest.raises(LLMError, match="not text"):
        parse_completion(b'{"choices": [{"message": {"content": 5}}]}')


# ------------------------------------------------------------ a real local LLM server


@dataclass
class FakeLLM:
    """A chat-completions server on 127.0.0.1:<port>, in a thread, for one test."""

    port: int
    mode: str = "good"
    answer: str = GOOD
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(state: list[FakeLLM]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            llm = state[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            llm.headers.append(dict(self.headers.items()))
            llm.requests.append({"path": self.path, "body": json.loads(raw)})
            if llm.mode == "slow":
                llm.release.wait(10)  # bounded: the fixture releases it at teardown
            if llm.mode == "malformed":
                payload = b'{"choices": [{"message": {"content": "Hi Ana'
            elif llm.mode == "error":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            else:
                payload = json.dumps(
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": llm.answer},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                ).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    state: list[FakeLLM] = []
    server = QuietServer(("127.0.0.1", 0), _handler(state))
    llm = FakeLLM(port=server.server_address[1])
    state.append(llm)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        llm.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_drafter(llm: FakeLLM, timeout: float = 5.0, **kw: Any) -> Drafter:
    engine = LLMEngine(
        llm.base_url,
        "llama3.2:3b",
        prompts_dir=bundled_prompts_dir(),
        timeout=timeout,
        **kw,
    )
    return Drafter(TemplateEngine(bundled_prompts_dir()), engine)


def test_llm_good_answer_is_used(fake_llm: FakeLLM) -> None:
    drafter = make_drafter(fake_llm, api_key_env="TEST_LLM_KEY", environ={"TEST_LLM_KEY": "sk-1"})
    text, used = drafter.draft(make_pick(), VOICE, now=NOW)
    assert (text, used) == (GOOD, "llm")
    [request] = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["model"] == "llama3.2:3b" and body["stream"] is False
    system, user = body["messages"]
    assert system["role"] == "system" and "Olivia Owner" in system["content"]
    assert "Olivia's Linen" in system["content"] and "warm, brief, personal" in system["content"]
    assert "{{" not in system["content"]
    assert "Ana Lima" in user["content"]
    assert fake_llm.headers[0]["Authorization"] == "Bearer sk-1"


def test_llm_request_holds_only_this_customers_data(fake_llm: FakeLLM) -> None:
    drafter = make_drafter(fake_llm)
    drafter.draft(make_pick(), VOICE)
    drafter.draft(OTHER, VOICE)
    first, second = (json.dumps(r["body"], ensure_ascii=False) for r in fake_llm.requests)
    for leak in ("Tomasz", "bakerfield", "Zebra quilt", "invoice 7731", "Thursday"):
        assert leak not in first
    for leak in ("Ana", "lima.example", "blue ones", "spring order"):
        assert leak not in second
    assert "Authorization" not in fake_llm.headers[0]


def test_llm_timeout_falls_back_to_template(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.mode = "slow"
    drafter = make_drafter(fake_llm, timeout=0.3)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="mailbot.drafting"):
        text, used = drafter.draft(make_pick(), VOICE, now=NOW)
    assert time.monotonic() - started < 3
    assert used == "template"
    assert text == TemplateEngine(bundled_prompts_dir()).draft(make_pick(), VOICE, now=NOW)
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert "fell back" in record.getMessage() and "timed out" in record.getMessage()


def test_llm_malformed_json_falls_back(fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    fake_llm.mode = "malformed"
    with caplog.at_level(logging.INFO, logger="mailbot.drafting"):
        _, used = make_drafter(fake_llm).draft(make_pick(), VOICE)
    assert used == "template"
    assert "malformed JSON" in caplog.text


def test_llm_http_error_falls_back(fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    fake_llm.mode = "error"
    with caplog.at_level(logging.INFO, logger="mailbot.drafting"):
        _, used = make_drafter(fake_llm).draft(make_pick(), VOICE)
    assert used == "template"
    assert "HTTP 500" in caplog.text


def test_llm_answer_with_another_address_falls_back(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.answer = (
        "Hi Ana,\n\nPlease send your card details to billing@evil.example today.\n\nOlivia"
    )
    with caplog.at_level(logging.INFO, logger="mailbot.drafting"):
        text, used = make_drafter(fake_llm).draft(make_pick(), VOICE)
    assert used == "template" and "evil" not in text
    assert "address other than the customer's" in caplog.text
    assert "card details" not in caplog.text  # the body is never logged


def test_llm_unreachable_falls_back() -> None:
    server = QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    engine = LLMEngine(f"http://127.0.0.1:{port}/v1", "m", prompts_dir=bundled_prompts_dir())
    with pytest.raises(LLMError, match="unreachable"):
        engine.draft(make_pick(), VOICE)
    drafter = Drafter(TemplateEngine(bundled_prompts_dir()), engine)
    assert drafter.draft(make_pick(), VOICE)[1] == "template"


def test_llm_engine_config_errors(tmp_path: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://x.example", "localhost:11434"):
        with pytest.raises(ConfigError, match="http"):
            LLMEngine(url, "m", prompts_dir=bundled_prompts_dir())
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "llm_system.txt"))):
        LLMEngine("http://127.0.0.1:1/v1", "m", prompts_dir=tmp_path)
    engine = LLMEngine(
        "http://127.0.0.1:1/v1",
        "m",
        prompts_dir=bundled_prompts_dir(),
        api_key_env="K",
        environ={"K": "secret-key"},
    )
    assert "secret-key" not in repr(engine)


def test_drafter_without_llm_uses_template() -> None:
    drafter = Drafter(TemplateEngine(bundled_prompts_dir()), None)
    text, used = drafter.draft(make_pick(Reason.WELCOME), VOICE)
    assert used == "template" and text.startswith("Hi Ana,")
