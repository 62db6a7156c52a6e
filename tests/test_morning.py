"""The digest job against a real store (no mail server): idempotent, empty-day choice."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from mailbot.cli import import_messages
from mailbot.config import Settings, load_settings
from mailbot.demo import demo_messages
from mailbot.morning import make_drafter, run_digest
from mailbot.store import Store

from .helpers import MINIMAL_CONFIG

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


def _settings(tmp: Path, extra: str = "") -> Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    p = tmp / "config.toml"
    p.write_text(MINIMAL_CONFIG + extra)
    return load_settings(p, env={})


def test_one_digest_per_date_with_its_drafts_queued_together(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Store(settings.data.dir) as store:
        import_messages(store, settings, demo_messages(NOW), "demo")
        day = date(2026, 11, 24)
        mid = run_digest(store, settings, NOW, make_drafter(settings), day)
        assert mid is not None and mid.startswith("mailbot.digest.")
        outbox = store.records("outbox")
        drafts = store.records("drafts")
        assert [i["kind"] for i in outbox].count("digest") == 1
        assert len(drafts) == [i["kind"] for i in outbox].count("draft") >= 3
        assert all(i["state"] == "queued" and i["rcpts"] == ["olivia@linen.example"]
                   for i in outbox)
        assert run_digest(store, settings, NOW, make_drafter(settings), day) is None
        assert len(store.records("outbox")) == len(outbox)
    with Store(settings.data.dir) as store:  # it was committed
        assert store.record("digests", "2026-11-24") is not None
        assert len(store.records("suggestions")) == len(drafts)


def test_nothing_to_suggest_sends_nothing_unless_asked(tmp_path: Path) -> None:
    quiet = _settings(tmp_path / "a")
    with Store(quiet.data.dir) as store:
        assert run_digest(store, quiet, NOW, make_drafter(quiet), date(2026, 11, 24)) is None
        assert store.records("outbox") == []
        record = store.record("digests", "2026-11-24")
        assert record is not None and record["state"] == "nothing to suggest"
    eager = _settings(tmp_path / "b", "[digest]\nsend_when_empty = true\n")
    with Store(eager.data.dir) as store:
        mid = run_digest(store, eager, NOW, make_drafter(eager), date(2026, 11, 24))
        assert mid is not None
        (item,) = store.records("outbox")
        assert item["kind"] == "digest"
