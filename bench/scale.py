"""Scale rows of the benchmark: a synthetic store, opened and ranked in fresh processes.

The mailbox part of the benchmark makes about 0.74 touchpoints per message, so even the
100,000-message run stores fewer than the issue's sizes. This builds a database of
exactly the sizes asked for, with the Store API the daemon uses:

- ``build DIR --customers 10000 --touchpoints 100000``: a deterministic history (a few
  customers write every month, most a handful of times, over seven years; both
  directions; threads; needs-reply flags computed by the store), committed in batches;
- ``open DIR``: a fresh interpreter opens it (what the daemon does at start-up), and
  prints the import and open times and the count;
- ``shortlist CONFIG``: a fresh interpreter opens the store and computes the morning
  list the way the daemon does (``morning.compose``: rank plus template drafts): the
  first time (which decodes every touchpoint) and again with the store warm, as in the
  long-running daemon; it prints the times.

Each prints one JSON line; :mod:`bench.run` starts them as children to take their
exact peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SUBJECTS = ("Order question", "Linen napkins", "Re: your order", "Delivery", "Hello",
            "Thank you!", "Custom tablecloth", "Gift wrapping", "Invoice", "Samples")
SNIPPETS = ("Could you tell me when the blue runner is back in stock?",
            "Thanks so much, it arrived today and looks lovely.",
            "Do you ship to Austria? We would need it before the 12th.",
            "Lovely to hear from you. Here are the photos you asked for.",
            "I would like to order two more of the grey ones.")


def _when(rng: random.Random, now: datetime, max_days: int) -> datetime:
    return now - timedelta(days=rng.uniform(0, max_days), seconds=rng.randrange(86400))


def build(data_dir: Path, customers: int, touchpoints: int, seed: int = 7,
          now: datetime | None = None) -> dict[str, Any]:
    """Fill ``data_dir`` (a fresh or existing store) up to the asked-for sizes."""
    from mailbot.models import Contact, Direction, Touchpoint
    from mailbot.store import Store

    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    # heavy-tailed activity: weights ~ 1/rank
    weights = [1.0 / (i + 1) ** 0.8 for i in range(customers)]
    addresses = [f"customer{i:05d}@mail{i % 97}.example" for i in range(customers)]
    started = time.perf_counter()
    with Store(data_dir) as store:
        have = store.touchpoint_count()
        for addr in addresses:
            if store.contact(addr) is None:
                store.upsert_contact(Contact(address=addr, name=addr.split("@")[0].title()))
        store.commit()
        pending: list[Touchpoint] = []
        n = have
        picks = rng.choices(range(customers), weights=weights, k=max(0, touchpoints - have))
        for serial, who in enumerate(picks, start=have):
            addr = addresses[who]
            inbound = rng.random() < 0.55
            date = _when(rng, now, 7 * 365 if who % 5 else 400)
            pending.append(Touchpoint(
                message_id=f"bench-{seed}-{serial}@mail.example", contact=addr,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                date=date, subject=rng.choice(SUBJECTS), snippet=rng.choice(SNIPPETS),
                thread_key=f"thread-{who}-{serial // 3}", folder="INBOX" if inbound else "Sent",
                uidvalidity=1, uid=serial + 1, reason="synthetic",
            ))
            if len(pending) >= 20_000:
                n += store.add_touchpoints(pending)
                store.commit()
                pending = []
        n += store.add_touchpoints(pending)
        store.commit()
        count = store.touchpoint_count()
    return {"customers": customers, "touchpoints": count, "added": n - have,
            "build_seconds": round(time.perf_counter() - started, 2)}


def open_store(data_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    from mailbot.store import Store
    t1 = time.perf_counter()
    store = Store(data_dir)
    t2 = time.perf_counter()
    n = store.touchpoint_count()
    store.close()
    return {"import": t1 - t0, "open": t2 - t1, "touchpoints": n}


def shortlist(config: Path, warm_runs: int = 3) -> dict[str, Any]:
    """The morning list as the daemon computes it: ``morning.compose`` (rank + drafts).

    The first compose after opening also decodes every touchpoint (the store decodes
    them per contact on first use); the daemon pays that once, since it keeps the
    store open. Both are reported: ``first`` and the median of ``warm_runs`` more.
    """
    from mailbot import morning
    from mailbot.config import load_settings
    from mailbot.store import Store

    settings = load_settings(config)
    t0 = time.perf_counter()
    store = Store(settings.data.dir, readonly=True)
    t1 = time.perf_counter()
    drafter = morning.make_drafter(settings)
    now = datetime.now(UTC)
    t2 = time.perf_counter()
    composed = morning.compose(store, settings, now, drafter)
    t3 = time.perf_counter()
    warm = []
    for _ in range(warm_runs):
        started = time.perf_counter()
        again = morning.compose(store, settings, now, drafter)
        warm.append(time.perf_counter() - started)
        assert [p.contact for p in again.picks] == [p.contact for p in composed.picks]
    return {"open": t1 - t0, "first": t3 - t2, "compose": sorted(warm)[len(warm) // 2],
            "picks": len(composed.picks),
            "reasons": sorted({p.reason.value for p in composed.picks}),
            "touchpoints": store.touchpoint_count(), "customers": len(store.contacts())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("dir", type=Path)
    b.add_argument("--customers", type=int, default=10_000)
    b.add_argument("--touchpoints", type=int, default=100_000)
    b.add_argument("--seed", type=int, default=7)
    o = sub.add_parser("open")
    o.add_argument("dir", type=Path)
    s = sub.add_parser("shortlist")
    s.add_argument("config", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "build":
        out = build(args.dir, args.customers, args.touchpoints, args.seed)
    elif args.cmd == "open":
        out = open_store(args.dir)
    else:
        out = shortlist(args.config)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
