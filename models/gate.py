"""The publish gate: checks a night's staged lists must pass before consumers see them. Lists are
rows (user_id, rank, track_id, score, source), as in gold.recommendations.

Each check returns None when it passes, else one line saying what is wrong:
- every user who should have a list has one;
- each list has exactly K tracks where the user's candidates allow (fewer only when they are short);
- no (user, rank) and no (user, track) twice; every score finite;
- no track the user disliked;
- not collapsed against the previous night's lists: the share of users whose list changed
  completely (no track in common), and the shift of the source mix (total variation distance of the
  shares of `source`), each within a configured bound.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def missing_users(lists: DataFrame, expected_users: DataFrame) -> str | None:
    missing = expected_users.select("user_id").distinct().join(lists.select("user_id").distinct(), "user_id",
                                                                "left_anti").count()
    return f"{missing} user(s) have no list" if missing else None


def wrong_sizes(lists: DataFrame, available: DataFrame, k: int) -> str | None:
    """available: (user_id, candidates) after every filter; each list must hold min(k, candidates)."""
    sizes = lists.groupBy("user_id").agg(F.count("*").alias("n"))
    wrong = (sizes.join(available, "user_id", "left").fillna(0, ["candidates"])
             .where(F.col("n") != F.least(F.lit(k), F.col("candidates"))).count())
    return f"{wrong} list(s) do not hold exactly K={k} tracks though the candidates allow" if wrong else None


def duplicates(lists: DataFrame) -> str | None:
    ranks = lists.groupBy("user_id", "rank").count().where("count > 1").count()
    tracks = lists.groupBy("user_id", "track_id").count().where("count > 1").count()
    if ranks or tracks:
        return f"{ranks} duplicate (user, rank) and {tracks} duplicate (user, track) row(s)"
    return None


def bad_scores(lists: DataFrame) -> str | None:
    bad = lists.where(F.col("score").isNull() | F.isnan("score") | (F.abs("score") == float("inf"))).count()
    return f"{bad} row(s) with a score that is not a finite number" if bad else None


def disliked(lists: DataFrame, dislikes: DataFrame | None) -> str | None:
    if dislikes is None:
        return None
    found = lists.join(dislikes, ["user_id", "track_id"], "left_semi").count()
    return f"{found} row(s) recommend a track the user disliked" if found else None


def collapsed(lists: DataFrame, previous: DataFrame | None, max_changed_share: float, max_source_shift: float
              ) -> tuple[str | None, dict]:
    """Against the previous night's lists (None on the first night): (problem or None, measurements)."""
    if previous is None or previous.isEmpty():
        return None, {}
    both = lists.select("user_id").distinct().join(previous.select("user_id").distinct(), "user_id")
    overlap = (lists.join(previous.select("user_id", "track_id"), ["user_id", "track_id"])
               .groupBy("user_id").count())
    stats = both.join(overlap, "user_id", "left").agg(
        F.count("*").alias("users"), F.sum(F.col("count").isNull().cast("int")).alias("changed")).first()
    changed = (stats["changed"] or 0) / stats["users"] if stats["users"] else 0.0

    def shares(frame: DataFrame) -> dict[str, float]:
        rows = frame.groupBy("source").count().collect()
        total = sum(r["count"] for r in rows) or 1
        return {r["source"]: r["count"] / total for r in rows}
    now, before = shares(lists), shares(previous)
    shift = 0.5 * sum(abs(now.get(s, 0.0) - before.get(s, 0.0)) for s in set(now) | set(before))
    measured = {"changed_share": round(changed, 4), "source_shift": round(shift, 4)}
    problems = []
    if changed > max_changed_share:
        problems.append(f"{changed:.0%} of users' lists changed completely since the previous night "
                        f"(publish.max_changed_share={max_changed_share})")
    if shift > max_source_shift:
        problems.append(f"the source mix moved by {shift:.2f} (total variation) since the previous night "
                        f"(publish.max_source_shift={max_source_shift})")
    return ("; ".join(problems) or None), measured
