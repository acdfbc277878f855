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


def list_checks(lists: DataFrame, expected_users: DataFrame, available: DataFrame, k: int,
                previous: DataFrame | None = None) -> tuple[list[str], dict]:
    """Every user who should have a list has one; each holds exactly min(k, the user's candidates)
    tracks; no (user, rank) and no (user, track) twice; every score finite. One pass over the lists,
    which also measures them: (problems, {users with a list, rows, the shortest list's length}).
    available: (user_id, candidates) after every filter. With the `previous` night's lists (user_id,
    track_id) the same pass measures what `collapsed` compares, and the dict has "overlap": (users
    with a list on both nights, those of them whose lists have no track in common); one query
    instead of two."""
    marked = lists
    if previous is not None:  # (user, track) pairs of the night before: each list row marked if it was there
        pairs = previous.select("user_id", "track_id").distinct().withColumn("_before", F.lit(1))
        marked = lists.join(pairs, ["user_id", "track_id"], "left")
    per_user = marked.groupBy("user_id").agg(
        F.count("*").alias("n"), F.countDistinct("rank").alias("ranks"), F.countDistinct("track_id").alias("tracks"),
        F.sum((F.col("score").isNull() | F.isnan("score") | (F.abs("score") == float("inf"))).cast("int"))
        .alias("bad"), *([F.sum("_before").alias("kept")] if previous is not None else []))
    expected = expected_users.select("user_id").distinct().withColumn("_expected", F.lit(True))
    joined = per_user.join(expected, "user_id", "full").join(available, "user_id", "left").fillna(0, ["candidates"])
    overlap = []
    if previous is not None:
        joined = joined.join(previous.select("user_id").distinct().withColumn("_was", F.lit(True)), "user_id", "left")
        both = F.col("n").isNotNull() & F.col("_was").isNotNull()
        overlap = [F.sum(both.cast("int")).alias("both"),
                   F.sum((both & F.col("kept").isNull()).cast("int")).alias("changed")]
    row = joined.agg(F.sum((F.col("n").isNull()).cast("int")).alias("missing"),
                     F.sum((F.col("n") != F.least(F.lit(k), F.col("candidates"))).cast("int")).alias("wrong_size"),
                     F.sum((F.col("n") - F.col("ranks")).cast("long")).alias("dup_ranks"),
                     F.sum((F.col("n") - F.col("tracks")).cast("long")).alias("dup_tracks"),
                     F.sum("bad").alias("bad"), F.count("n").alias("users"), F.sum("n").alias("rows"),
                     F.min("n").alias("min_per_user"), *overlap).first()
    measured = {"users": int(row["users"] or 0), "rows": int(row["rows"] or 0), "min_per_user": row["min_per_user"]}
    if previous is not None:
        measured["overlap"] = (int(row["both"] or 0), int(row["changed"] or 0))
    problems = []
    if row["missing"]:
        problems.append(f"{row['missing']} user(s) have no list")
    if row["wrong_size"]:
        problems.append(f"{row['wrong_size']} list(s) do not hold exactly K={k} tracks though the candidates allow")
    if row["dup_ranks"] or row["dup_tracks"]:
        problems.append(f"{row['dup_ranks']} duplicate (user, rank) and {row['dup_tracks']} duplicate (user, track) "
                        f"row(s)")
    if row["bad"]:
        problems.append(f"{row['bad']} row(s) with a score that is not a finite number")
    return problems, measured


def source_counts(lists: DataFrame) -> dict[str, int]:
    """Rows of the lists per source (empty for no lists)."""
    return {r["source"]: int(r["count"]) for r in lists.groupBy("source").count().collect()}


def disliked(lists: DataFrame, dislikes: DataFrame | None) -> str | None:
    if dislikes is None:
        return None
    found = lists.join(dislikes, ["user_id", "track_id"], "left_semi").count()
    return f"{found} row(s) recommend a track the user disliked" if found else None


def collapsed(lists: DataFrame, previous: DataFrame | None, max_changed_share: float, max_source_shift: float,
              sources: dict[str, int] | None = None, overlap: tuple[int, int] | None = None,
              before: dict[str, int] | None = None) -> tuple[str | None, dict]:
    """Against the previous night's lists (None or empty on the first night): (problem or None,
    measurements). `sources`: the lists' source_counts, `before`: the previous lists', `overlap`:
    list_checks' (users on both nights, changed completely), when the caller has them."""
    if before is None:
        before = source_counts(previous) if previous is not None else {}
    if not before:
        return None, {}
    if overlap is None:
        both = lists.select("user_id").distinct().join(previous.select("user_id").distinct(), "user_id")
        matched = (lists.join(previous.select("user_id", "track_id"), ["user_id", "track_id"])
                   .groupBy("user_id").count())
        stats = both.join(matched, "user_id", "left").agg(
            F.count("*").alias("users"), F.sum(F.col("count").isNull().cast("int")).alias("changed")).first()
        overlap = (int(stats["users"] or 0), int(stats["changed"] or 0))
    users, changed_users = overlap
    changed = changed_users / users if users else 0.0

    def shares(counts: dict[str, int]) -> dict[str, float]:
        total = sum(counts.values()) or 1
        return {source: n / total for source, n in counts.items()}
    now, before = shares(source_counts(lists) if sources is None else sources), shares(before)
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
