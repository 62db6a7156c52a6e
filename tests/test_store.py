"""The TinyDB adapter: atomic commits, indexes, refusal to touch a damaged file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.errors import StoreError
from mailbot.models import Contact, ContactStatus, Direction, FolderState, Touchpoint
from mailbot.store import DB_NAME, Store, load_database, needs_reply_keys

from .helpers import ROOT

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def tp(contact: str, n: int, direction: Direction = Direction.INBOUND, *, days: int = 0,
       thread: str = "") -> Touchpoint:
    return Touchpoint(
        message_id=f"m{n}@x", contact=contact, direction=direction,
        date=T0 + timedelta(days=days), subject=f"s{n}", snippet="hi", thread_key=thread or f"t{n}",
    )


def test_commit_roundtrip_and_mode(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        assert s.add_touchpoints([tp("a@x", 1), tp("a@x", 2, days=1), tp("b@x", 3)]) == 3
        s.upsert_contact(Contact(address="a@x", name="Ana"))
        s.set_folder_state(FolderState("INBOX", 7, 100, 1, True))
        s.commit()
    assert (tmp_path / DB_NAME).stat().st_mode & 0o777 == 0o600
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 3
        assert s.contact("A@X") == Contact(address="a@x", name="Ana")
        assert s.folder_state("INBOX") == FolderState("INBOX", 7, 100, 1, True)
        assert [t.message_id for t in s.touchpoints_for("a@x")] == ["m1@x", "m2@x"]


def test_duplicates_are_ignored_in_memory_and_on_disk(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        assert s.add_touchpoints([tp("a@x", 1), tp("a@x", 1)]) == 1
        s.commit()
        assert s.add_touchpoints([tp("a@x", 1)]) == 0
        s.commit()
    data = load_database(tmp_path / DB_NAME).data
    assert len(data["touchpoints"]) == 1


def test_uncommitted_changes_are_dropped_on_close(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()
        s.add_touchpoints([tp("a@x", 2)])
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 1


def test_updates_to_existing_rows_are_written(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.upsert_contact(Contact(address="a@x", name="Ana"))
        s.upsert_contact(Contact(address="b@x"))
        s.commit()
        s.upsert_contact(Contact(address="a@x", name="Ana", status=ContactStatus.OPTED_OUT))
        s.set_folder_state(FolderState("Sent", 1, 5, 1))
        s.commit()
        s.set_folder_state(FolderState("Sent", 1, 9, 1, True))
        s.commit()
    with Store(tmp_path) as s:
        c = s.contact("a@x")
        assert c is not None and c.status is ContactStatus.OPTED_OUT
        assert s.folder_state("Sent") == FolderState("Sent", 1, 9, 1, True)
        assert len(s.contacts()) == 2


def test_needs_reply_follows_the_owner_answers(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1, days=0)])
        s.commit()
        summary = s.summary("a@x")
        assert summary is not None and summary.needs_reply
        s.add_touchpoints([tp("a@x", 2, Direction.OUTBOUND, days=1, thread="t1")])
        s.commit()
    with Store(tmp_path) as s:
        summary = s.summary("a@x")
        assert summary is not None and not summary.needs_reply
        assert not any(t.needs_reply for t in s.touchpoints_for("a@x"))


def test_needs_reply_keys_latest_of_thread_only() -> None:
    tps = [tp("a@x", 1, days=0, thread="T"), tp("a@x", 2, days=1, thread="T"),
           tp("a@x", 3, Direction.OUTBOUND, days=2, thread="U"), tp("a@x", 4, days=3, thread="V")]
    assert needs_reply_keys(tps) == {tps[3].key}
    assert needs_reply_keys(tps[:2]) == {tps[1].key}


def test_damaged_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(b'{"touchpoints": {"1": {"key": ')
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not valid JSON"):
        Store(tmp_path)
    assert db.read_bytes() == before
    db.write_bytes(b"")
    with pytest.raises(StoreError, match="empty"):
        Store(tmp_path)
    db.write_text('{"touchpoints": {"1": {"contact": "a@x"}}}')
    with pytest.raises(StoreError, match="damaged record"):
        Store(tmp_path)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with Store(tmp_path), pytest.raises(StoreError, match="another mailbot process"):
        Store(tmp_path)
    with Store(tmp_path) as s:  # released on close
        assert s.touchpoint_count() == 0


def test_readonly_store_cannot_write(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()
    ro = Store(tmp_path, readonly=True)
    ro.add_touchpoints([tp("a@x", 2)])
    with pytest.raises(StoreError, match="read-only"):
        ro.commit()


WRITER = """
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from mailbot.models import Direction, Touchpoint
from mailbot.store import Store
s = Store(Path(sys.argv[1]))
n = s.touchpoint_count()
t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
print("ready", flush=True)
while True:
    s.add_touchpoints([Touchpoint(message_id=f"m{n + i}", contact=f"c{(n + i) % 50}@x",
                                  direction=Direction.INBOUND, date=t0 + timedelta(minutes=n + i),
                                  subject="x" * 50, snippet="y" * 100, thread_key=f"m{n + i}")
                       for i in range(200)])
    n += 200
    s.commit()
"""


def test_kill_9_during_commits_always_leaves_a_loadable_file(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    counts = []
    for delay in (0.3, 0.45, 0.6, 0.75, 0.9):
        with subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        with Store(tmp_path) as s:  # loads, whatever instant the writer died at
            counts.append(s.touchpoint_count())
            assert counts[-1] % 200 == 0  # whole commits only
    assert counts == sorted(counts) and counts[-1] > 0


def test_small_record_tables_round_trip_and_update(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put_record("outbox", {"message_id": "m1", "state": "queued"})
        s.put_record("digests", {"date": "2026-11-24", "state": "queued"})
        s.commit()
        s.put_record("outbox", {"message_id": "m1", "state": "sent"})
        s.put_record("outbox", {"message_id": "m2", "state": "queued"})
        s.commit()
    with Store(tmp_path) as s:
        assert s.record("outbox", "m1") == {"message_id": "m1", "state": "sent"}
        assert sorted(r["message_id"] for r in s.records("outbox")) == ["m1", "m2"]
        assert s.record("digests", "2026-11-24") == {"date": "2026-11-24", "state": "queued"}
        assert s.record("drafts", "nope") is None


def test_a_killed_writers_temp_file_is_cleared_by_the_next_writer(tmp_path: Path) -> None:
    stale = tmp_path / f".{DB_NAME}.99999.tmp"
    stale.write_bytes(b'{"half": ')
    with Store(tmp_path, readonly=False):
        assert not stale.exists()


# --------------------------------------------------------------------------- journal


def _journal(tmp_path: Path) -> Path:
    return tmp_path / (DB_NAME + ".journal")


def test_a_small_commit_appends_to_the_journal_and_leaves_the_snapshot(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()  # the first commit writes the snapshot
        snapshot = (tmp_path / DB_NAME).read_bytes()
        s.add_touchpoints([tp("b@x", 2)])
        s.set_folder_state(FolderState("INBOX", 7, 2, 1))
        s.commit()
        assert (tmp_path / DB_NAME).read_bytes() == snapshot
        lines = _journal(tmp_path).read_bytes().splitlines()
        assert len(lines) == 1
        entry = json.loads(lines[0])
        assert sorted(entry) == ["sync", "touchpoints"]
        assert [d["contact"] for d in entry["touchpoints"].values()] == ["b@x"]
    assert _journal(tmp_path).stat().st_mode & 0o777 == 0o600
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 2
        assert s.folder_state("INBOX") == FolderState("INBOX", 7, 2, 1)
    with Store(tmp_path, readonly=True) as r:
        assert r.touchpoint_count() == 2


def test_updates_replayed_from_the_journal_replace_whole_documents(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.upsert_contact(Contact(address="a@x", name="Ana"))
        s.commit()
        for status in (ContactStatus.OPTED_OUT, ContactStatus.NOT_CUSTOMER):
            s.upsert_contact(Contact(address="a@x", name="Ana", status=status))
            s.commit()
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()
        s.add_touchpoints([tp("a@x", 2, Direction.OUTBOUND, days=1)])  # flips needs_reply of 1
        s.commit()
    assert len(_journal(tmp_path).read_bytes().splitlines()) == 4
    with Store(tmp_path) as s:
        c = s.contact("a@x")
        assert c is not None and c.status is ContactStatus.NOT_CUSTOMER
        assert [t.needs_reply for t in s.touchpoints_for("a@x")] == [False, False]


def test_the_journal_is_compacted_into_the_snapshot_once_it_outgrows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailbot.store.JOURNAL_MIN_BYTES", 2000)
    sizes = []
    with Store(tmp_path) as s:
        for n in range(60):
            s.add_touchpoints([tp(f"c{n}@x", n)])
            s.commit()
            sizes.append(_journal(tmp_path).stat().st_size if _journal(tmp_path).exists() else 0)
    snapshot = (tmp_path / DB_NAME).stat().st_size
    assert 0 in sizes[1:], "the journal was never emptied by a compaction"
    assert max(sizes) <= max(2000, snapshot // 2)
    # the snapshot alone holds everything written before the last compaction
    last_reset = len(sizes) - 1 - sizes[::-1].index(0)
    assert len(json.loads((tmp_path / DB_NAME).read_text())["touchpoints"]) == last_reset + 1
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 60


def _snapshot_and_one_journal_line(tmp_path: Path) -> Path:
    """Two commits: the first writes the snapshot, the second one journal line."""
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()
        s.add_touchpoints([tp("b@x", 2)])
        s.commit()
    journal = _journal(tmp_path)
    assert journal.read_bytes().count(b"\n") == 1
    return journal


def test_a_torn_last_journal_line_is_ignored_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    journal = _snapshot_and_one_journal_line(tmp_path)
    good = journal.read_bytes()
    for torn in (b'{"touchpoints":{"3":{"key"', b'{"touchpoints":{"3":{"key"\n'):
        journal.write_bytes(good + torn)
        with Store(tmp_path, readonly=True) as r:
            assert r.touchpoint_count() == 2
        assert journal.read_bytes() == good + torn  # a reader changes nothing
        with Store(tmp_path) as s:
            assert s.touchpoint_count() == 2
        assert journal.read_bytes() == good
    with Store(tmp_path) as s:  # and commits after the cut replay in order
        s.add_touchpoints([tp("c@x", 3)])
        s.commit()
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 3


def test_damage_in_the_middle_of_the_journal_is_refused_and_left_untouched(
        tmp_path: Path) -> None:
    journal = _snapshot_and_one_journal_line(tmp_path)
    damaged = b'{"touchpoints": [\n' + journal.read_bytes()
    journal.write_bytes(damaged)
    with pytest.raises(StoreError, match=r"journal .* is damaged at byte 0"):
        Store(tmp_path)
    assert journal.read_bytes() == damaged
    (tmp_path / DB_NAME).unlink()
    journal.write_bytes(b'{"touchpoints":{}}\n')
    with pytest.raises(StoreError, match="exists but the database"):
        Store(tmp_path)


def test_a_crash_between_new_snapshot_and_emptied_journal_changes_nothing(
        tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.add_touchpoints([tp("a@x", 1)])
        s.commit()
        s.upsert_contact(Contact(address="a@x", name="A"))
        s.add_touchpoints([tp("a@x", 2, days=1)])
        s.commit()
        s.upsert_contact(Contact(address="a@x", name="Ana"))
        s.add_touchpoints([tp("a@x", 3, Direction.OUTBOUND, days=2)])
        s.commit()
    stale_journal = _journal(tmp_path).read_bytes()
    with Store(tmp_path) as s:  # as a compaction would leave it, before the journal was emptied
        assert s._storage is not None
        s._storage.dirty = True
        s._storage.flush()
    assert _journal(tmp_path).read_bytes() == b""
    _journal(tmp_path).write_bytes(stale_journal)
    with Store(tmp_path) as s:
        assert s.touchpoint_count() == 3
        assert s.contact("a@x") == Contact(address="a@x", name="Ana")
        assert [t.needs_reply for t in s.touchpoints_for("a@x")] == [False, False, False]


def test_a_decoded_touchpoint_is_a_whole_frozen_touchpoint() -> None:
    import dataclasses

    from mailbot.store import touchpoint_from_doc, touchpoint_to_doc

    original = Touchpoint(
        message_id="m9@x", contact="a@x", direction=Direction.OUTBOUND, date=T0,
        subject="s", snippet="hi", thread_key="t", folder="Sent", uidvalidity=7, uid=9,
        reason="r", needs_reply=True, opt_out=True, negative=True,
    )
    decoded = touchpoint_from_doc(touchpoint_to_doc(original))
    assert decoded == original and hash(decoded) == hash(original)
    assert all(getattr(decoded, f.name) != f.default for f in dataclasses.fields(Touchpoint)
               if f.default is not dataclasses.MISSING)  # each stored value came through
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.subject = "changed"  # type: ignore[misc]
    assert dataclasses.replace(decoded, uid=10).uid == 10


def test_needs_reply_is_settled_once_per_contact_before_reads_and_commits(
        tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        for n in range(5):  # one message at a time, as a backfill adds them
            s.add_touchpoints([tp("a@x", n, days=n, thread="T")])
        assert s._unsettled == {"a@x"}
        # a read sees settled flags: only the latest of the thread wants an answer
        assert [t.needs_reply for t in s.touchpoints_for("a@x")] == [False] * 4 + [True]
        assert not s._unsettled
        s.add_touchpoints([tp("a@x", 9, Direction.OUTBOUND, days=9, thread="U")])
        s.commit()  # a commit settles too, and writes the settled flags
    with Store(tmp_path) as s:
        assert not any(t.needs_reply for t in s.touchpoints_for("a@x"))


def test_the_snapshot_is_written_in_chunks_as_the_same_json() -> None:
    from mailbot.store import _dump_chunks, _dumps

    data = {"touchpoints": {str(i): {"key": f"k{i}", "s": "é"} for i in range(1, 8)},
            "empty": {}, "meta": {"1": {"schema": 1}}}
    for per_chunk in (1, 3, 7, 100):
        assert b"".join(_dump_chunks(data, per_chunk)) == _dumps(data)
    assert b"".join(_dump_chunks({})) == b"{}"


def test_a_thank_you_for_the_owners_answer_needs_no_reply() -> None:
    question = Touchpoint(message_id="q@x", contact="a@x", direction=Direction.INBOUND,
                          date=T0, subject="s", snippet="Do you ship to Austria?",
                          thread_key="T")
    answer = replace(question, message_id="a@x", direction=Direction.OUTBOUND,
                     date=T0 + timedelta(days=1), snippet="Yes, it is on its way.")
    thanks = replace(question, message_id="t@x", date=T0 + timedelta(days=3),
                     snippet="Thank you, it arrived and looks lovely!")
    assert needs_reply_keys([question]) == {question.key}
    assert needs_reply_keys([question, answer, thanks]) == set()
    more = replace(thanks, snippet="Thanks! And the invoice?")
    assert needs_reply_keys([question, answer, more]) == {more.key}
    # "thanks in advance" after an unanswered question: still waiting
    early = replace(thanks, date=T0 + timedelta(hours=1), snippet="Thanks in advance!")
    assert needs_reply_keys([question, early]) == {early.key}
