"""The benchmark at a tiny size, through the real stack: it runs and the counts match.

No timing is asserted here (benchmarks are never timed tests); ``make bench`` measures.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.mailbox_gen import MailboxGenerator
from bench.run import Options, markdown_table, run_bench, table

_NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_generator_is_deterministic_and_well_formed() -> None:
    a = MailboxGenerator("owner-x@example.test", 400, seed=7, now=_NOW)
    b = MailboxGenerator("owner-x@example.test", 400, seed=7, now=_NOW)
    mails_a, mails_b = list(a.mails()), list(b.mails())
    assert [m.raw for m in mails_a] == [m.raw for m in mails_b]
    assert a.truth.summary() == b.truth.summary()
    assert a.truth.total == 400
    kinds = Counter(m.kind for m in mails_a)
    for kind in ("customer_in", "customer_out", "newsletter", "auto_reply", "no_reply"):
        assert kinds[kind] > 0, kinds
    for m in mails_a:
        parsed = email.message_from_bytes(m.raw, policy=email.policy.default)
        assert parsed["From"], m.raw[:300]
        assert b"\r" not in m.raw
        assert m.imap_size == len(m.raw) + m.raw.count(b"\n")
    # a copy of a sent message in INBOX (Bcc to self) counts once
    assert a.truth.touchpoints == len({(m.message_id or f"noid:{m.seq}", d, c)
                                       for m in mails_a for d, c in m.touchpoints})


@pytest.mark.stack
def test_bench_tiny_through_the_stack(mail_stack: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_bench(mail_stack, Options(messages=300, live=3, skip_peer=True, live_gap=0.3,
                                               scale_touchpoints=3000, scale_customers=200),
                       tmp_path, say=lines.append)
    box = result["mailbox"]
    assert box["messages"] == 300
    assert box["inbox_exists"] == box["inbox"] and box["sent_exists"] == box["sent"]
    assert box["imap_bytes"] == box["bytes_imap"]
    assert "\\Sent" in box["sent_flags"]

    floor = result["floor"]
    assert floor["messages"] == 300 and floor["cold"]["messages"] == 300

    back = result["correctness"]["backfill"]
    assert back["ok"], "\n".join(lines)
    assert back["stored_touchpoints"] == box["expected_touchpoints"] > 0
    assert back["stored_customers"] == box["expected_customers"] > 0
    assert result["backfill"]["bytes_read"] > 0

    live = result["live"]
    assert live["delivered"] == live["stored"] == 3, live
    assert live["idle_seen"] == 3, live
    assert live["daemon_exit_code"] == 0, live
    after = result["correctness"]["after_live"]
    assert after["ok"], "\n".join(lines)
    assert after["stored_touchpoints"] == box["expected_touchpoints"] + 4  # warm-up + 3

    assert result["startup"]["touchpoints"] == after["stored_touchpoints"]
    scale = result["scale"]
    assert scale["startup"]["touchpoints"] == 3000
    assert scale["shortlist"]["touchpoints"] == 6000
    assert scale["shortlist"]["customers"] == 200
    assert 3 <= scale["shortlist"]["picks"] <= 7, scale
    assert result["peer"] == {"skipped": "--skip-peer"}
    assert "touchpoints stored" in table(result)
    assert markdown_table(result).startswith("| measure |")

