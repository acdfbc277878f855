"""How the days of ../shared/data/lfm1b-dev relate to each other and to its held-out day: a diagnosis of
the dev set (it chooses nothing; setlist chooses on validation nights only).

    .venv/bin/python bench/lfm1b_days.py

Prints, per user and day, the share of a day's distinct tracks that the user also played on each
other day (the held-out day 29 against days 1..28, and an ordinary day against its neighbours), and
what simple orderings of each user's history score on the next day: on a validation night inside the
28 days (day 27 scored on day 28) and on the held-out day (day 28's lists scored on day 29). Plain
Python over the raw files; no Spark.

Also per user, on the user's own active days: the share of the held-out day's tracks that the user
played on their 1st, 2nd, ... active day and on their last, second-to-last, ... active day, against
the same profile of an ordinary day (every training day's tracks against the user's active days
before it). An ordinary day resembles the user's latest active days; the held-out day their first.
"""
from __future__ import annotations

import collections
import glob
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfm1b-dev"


def load():
    rows = []
    for path in sorted(glob.glob(str(ROOT / "raw" / "*" / "listens.tsv"))):
        for line in open(path, encoding="utf-8"):
            user, ts, _, _, _, track = line.rstrip("\n").split("\t")
            rows.append((user, ts, track))
    return rows


def ndcg(recs: list[str], truth: set[str], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(recs[:k]) if r in truth)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(truth))))
    return dcg / idcg if idcg else 0.0


def orderings():
    def most_played(history):  # plays, then the earlier first play
        counts, first = collections.Counter(t for _, t in history), {}
        for ts, t in history:
            first.setdefault(t, ts)
        return sorted(counts, key=lambda t: (-counts[t], first[t]))

    def most_played_recent(history):  # plays, then the later last play
        counts, last = collections.Counter(t for _, t in history), {}
        for ts, t in history:
            last[t] = ts
        return sorted(counts, key=lambda t: (-counts[t], [-ord(c) for c in last[t]]))

    def distinct(history):
        return list(dict.fromkeys(t for _, t in history))

    return {"most played (ties: earlier first play)": most_played,
            "most played (ties: later last play)": most_played_recent,
            "latest distinct tracks": lambda h: distinct(reversed(h)),
            "earliest distinct tracks": distinct}


def relative_profile(by_day, days, refs, width: int = 6) -> tuple[list[float], list[float]]:
    """Mean share of a reference day's tracks (per user active on it) played on the user's k-th active
    day before it, counted from their first active day and from their last, k = 0..width-1."""
    first, last = [[] for _ in range(width)], [[] for _ in range(width)]
    for ref in refs:
        for user, tracks in by_day[ref].items():
            active = [d for d in days if d < ref and user in by_day[d]]
            shares = [len(by_day[d][user] & tracks) / len(tracks) for d in active]
            for k in range(min(width, len(shares))):
                first[k].append(shares[k])
                last[k].append(shares[-1 - k])
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    return [mean(x) for x in first], [mean(x) for x in last]


def main() -> None:
    rows = load()
    held = json.loads((ROOT / "held_out.json").read_text())
    by_day: dict[str, dict[str, set]] = collections.defaultdict(lambda: collections.defaultdict(set))
    for user, ts, track in rows:
        by_day[ts[:10]][user].add(track)
    days = sorted(by_day)

    def overlap(a: str, b: str) -> float:
        shared = sum(len(by_day[a][u] & tracks) for u, tracks in by_day[b].items() if u in by_day[a])
        return shared / max(sum(len(t) for t in by_day[b].values()), 1)

    for ref in (days[-1], days[14]):
        print(f"share of {ref}'s tracks (per user) also played on each day:")
        print("  " + " ".join(f"{d[-2:]}:{overlap(d, ref):.3f}" for d in days if d != ref))
    print(f"\ndistinct (user, track) pairs per day: " + " ".join(f"{d[-2:]}:{sum(len(v) for v in by_day[d].values())}" for d in days))
    print("\nper user, share of a day's tracks also played on the user's own active days before it:")
    for label, refs in (("held-out day 29", days[-1:]), ("ordinary days 2..28", days[1:-1])):
        from_first, from_last = relative_profile(by_day, days, refs)
        print(f"  {label:<20} from the user's first active day: "
              + " ".join(f"{v:.3f}" for v in from_first))
        print(f"  {'':<20} from the user's last active day:  "
              + " ".join(f"{v:.3f}" for v in from_last))
    for label, cut in (("validation night 2026-10-27 scored on 2026-10-28", "2026-10-27"),
                       ("held-out: 2026-10-28's lists scored on 2026-10-29", held["last_train_date"])):
        history = collections.defaultdict(list)
        for user, ts, track in rows:
            if ts[:10] <= cut:
                history[user].append((ts, track))
        next_day = days[days.index(cut) + 1]
        truth = {u: t for u, t in by_day[next_day].items() if u in history}
        print(f"\n{label} ({len(truth)} users), NDCG@10:")
        for name, order in orderings().items():
            scores = [ndcg(order(history[u]), t) for u, t in truth.items()]
            print(f"  {name:<40} {sum(scores) / len(scores):.4f}")


if __name__ == "__main__":
    main()
