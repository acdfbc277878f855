"""recommend: the top-K tracks of every user for run date D into gold.recommendations.

Candidates per user, each source's top recommend.candidates_per_source (models.sources):
- history: the user's own most played tracks (people replay what they love);
- als: the latest ALS model trained on or before D (its factors multiplied in chunks on the executors);
- lstm: the latest LSTM's next tracks after the user's latest session (scored on the executors);
- item2vec: neighbours of the user's recent tracks in the latest embeddings;
- segment: the most played tracks of the user's taste segment;
- popularity: the most played tracks overall (the last fallback, and the pool that guarantees K).
Every candidate gets the ranker's features (models.features), stored in gold.candidates for D: the
rank stage of later nights learns from them and evaluate scores them. Users with fewer than
recommend.min_history plays get segment and popularity candidates only. The candidates are ordered
by the configuration the rank stage chose for D on its validation night (gold.models, model
`ranker`): the learned ranker, the linear blend (models.blend, recommend.weight_<source>) or the
users' most played tracks; before any night could be validated, rank.default_config. Feedback (silver.feedback):
tracks the user disliked are dropped for good, liked ones boosted, lately skipped ones damped. With
recommend.exclude_played_days > 0 tracks played lately are dropped too; then the greedy MMR pick
(models.diversify, window functions) takes K tracks per user, with at most recommend.max_per_artist
per artist when that is set. The lists are staged in gold.staged_recommendations and pass the
publish gate (models.gate: a list for every user, exactly K where the candidates allow, no duplicate,
no disliked track, finite scores, no collapse against the previous night) before they replace D's
rows of gold.recommendations in one commit; a refused night fails with exit code 5 and consumers
keep the previous night's lists.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io, records
from jobs.core.records import input_versions, record_model
from jobs.core.config import Config
from jobs.core.errors import InputError, PublishRefused
from jobs.core.frames import CacheScope
from jobs.core.tables import (GOLD_CANDIDATES, GOLD_RECOMMENDATIONS, GOLD_STAGED_RECOMMENDATIONS, GOLD_TRACK_EMBEDDINGS,
                              GOLD_USER_SEGMENTS, PLAY_EVENTS, SILVER_FEEDBACK, SILVER_PLAYS, SILVER_TRACKS,
                              SILVER_USERS)
from models import gate, ranker, serving, sources
from models.als import top_scored
from models.blend import SOURCES, apply_feedback, history_scores, source_scores
from models.features import candidate_features
from models.diversify import diversify
from udfs.dates import plays_within, utc_midnight

log = logging.getLogger("setlist.recommend")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.recommend
    with CacheScope() as cache:
        # hash-partitioned by user once: the per-user windows and aggregations of the sources and the
        # features below then read it without a shuffle of their own
        plays = cache(delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day))
                      .select(*PLAY_EVENTS).repartition("user_idx"))
        users = delta_io.read(spark, cfg, SILVER_USERS).where(F.col("first_seen_date") <= F.lit(day))
        everyone = users.select("user_idx")
        play_counts = everyone.join(plays.groupBy("user_idx").agg(F.count("*").alias("n")), "user_idx", "left")
        play_counts = play_counts.fillna(0, ["n"])
        # broadcast (one int per user) where the sources join it to the plays, which then keep their
        # partitioning by user and are not sorted for a merge join
        warm = F.broadcast(play_counts.where(F.col("n") >= conf.min_history).select("user_idx"))
        cold = play_counts.where(F.col("n") < conf.min_history).select("user_idx")
        sizes = play_counts.agg(F.count("*").alias("users"),
                                F.sum((F.col("n") < conf.min_history).cast("long")).alias("cold")).first()
        n_users, n_cold = int(sizes["users"]), int(sizes["cold"] or 0)
        if n_users == 0:
            raise InputError(f"recommend {day}: no users in {SILVER_USERS.full_name}: run clean first")
        window = plays_within(plays, day, conf.history_days)
        latest = records.latest_models(spark, cfg, ("als", "lstm", "ranker"), day)  # gold.models read once
        parts, used = candidates(spark, cfg, day, window, warm, everyone, latest)
        log.info("recommend %s: %d users (%d cold start), sources %s", day, n_users, n_cold, used)
        features = candidate_features(parts, window, day, conf.weights(), cold).withColumn("run_date", F.lit(day))
        written = delta_io.replace_date(features, cfg, GOLD_CANDIDATES, "run_date", day)
        # read back, not cached: scoring needs a few of its columns, which Parquet reads faster than
        # Spark builds an in-memory copy of all of them (measured at 1M events)
        stored = delta_io.read(spark, cfg, GOLD_CANDIDATES).where(F.col("run_date") == F.lit(day))
        config, model, chosen = served_config(spark, cfg, day, latest["ranker"])
        log.info("recommend %s: ordering %d candidates by %s (%s)", day, written["rows"], config, chosen)
        blended = ranker.score_config(stored, config, model)
        if conf.exclude_played_days > 0:
            lately = plays.where(F.col("play_date") > F.lit(day - dt.timedelta(days=conf.exclude_played_days)))
            blended = blended.join(lately.select("user_idx", "track_idx").distinct(), ["user_idx", "track_idx"],
                                   "left_anti")
        blended = cache(with_feedback(spark, cfg, day, blended, users))  # four columns, used twice below
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_idx", "track_id", "artist_name", "track_name")
        picked = diversify(blended.join(tracks, "track_idx"), conf.k, conf.max_per_artist, conf.mmr_lambda)
        out = (picked.join(tracks, "track_idx").join(users.select("user_idx", "user_id"), "user_idx")
               .withColumn("run_date", F.lit(day)))
        # the rows of each source, measured as the staged rows are written: the publish gate's source mix
        staged = delta_io.replace_date(out, cfg, GOLD_STAGED_RECOMMENDATIONS, "run_date", day,
                                       {source: F.sum((F.col("source") == source).cast("long")) for source in SOURCES})
        available = (blended.groupBy("user_idx").agg(F.count("*").alias("candidates"))
                     .join(users.select("user_idx", "user_id"), "user_idx").drop("user_idx"))
        gate, lists = publish(spark, cfg, day, users.select("user_id"), available, staged_sources(staged))
    # the published rows are the staged rows the gate measured (one commit replaced D's rows by them)
    summary = {"users": lists["users"], "rows": lists["rows"], "min_per_user": lists["min_per_user"],
               "sources": lists["sources"], "models": used, "served": config, "chosen_by": chosen, "gate": gate}
    log.info("recommend %s: %s", day, summary)
    # the lineage of D's lists: which models, configuration and data versions made them
    record_model(spark, cfg, day, "recommendations", f"recommendations-{day.isoformat()}", config, 0,
                 {"served": config, "chosen_by": chosen, "models": used, "k": conf.k, "weights": conf.weights(),
                  "history_days": conf.history_days, "candidates_per_source": conf.candidates_per_source},
                 {k: v for k, v in summary.items() if k in ("users", "rows", "sources", "gate")},
                 GOLD_RECOMMENDATIONS.path(cfg),
                 input_versions(spark, cfg, SILVER_PLAYS, GOLD_CANDIDATES, GOLD_RECOMMENDATIONS))
    return summary


def candidates(spark: SparkSession, cfg: Config, day: dt.date, plays: DataFrame, warm: DataFrame,
               everyone: DataFrame, latest: dict) -> tuple[list[DataFrame], dict]:
    """Every available source's scored candidates, and which model or data each one used; `latest`:
    the gold.models rows of the models to use (records.latest_models)."""
    conf, n = cfg.recommend, cfg.recommend.candidates_per_source
    parts = [history_scores(plays, warm, n)]
    used = {"history": f"plays up to {day}"}
    als_row = latest.get("als")
    if als_row is not None:
        parts.append(source_scores(top_scored(ALSModel.load(als_row["path"]), warm, n), n, "als"))
        used["als"] = als_row["version"]
    lstm_row = latest.get("lstm")
    if lstm_row is not None:
        saved = serving.load(lstm_row["path"])
        windows = sources.latest_windows(plays.join(warm, "user_idx"), saved["window"])
        parts.append(source_scores(serving.next_track_scores(spark, saved, windows, "user_idx", n), n, "lstm"))
        used["lstm"] = lstm_row["version"]
    emb_date = delta_io.latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, day)
    if emb_date is not None:
        embeddings = delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(emb_date))
        neighbours = sources.neighbour_table(spark, embeddings, conf.neighbours)
        recent = sources.recent_tracks(plays, warm, conf.recent_tracks)
        parts.append(source_scores(sources.item2vec(neighbours, recent), n, "item2vec"))
        used["item2vec"] = f"embeddings of {emb_date}"
    seg_date = delta_io.latest_date(spark, cfg, GOLD_USER_SEGMENTS, day)
    if seg_date is not None:
        segments = delta_io.read(spark, cfg, GOLD_USER_SEGMENTS).where(F.col("run_date") == F.lit(seg_date))
        parts.append(source_scores(sources.segment_scored(plays, segments, everyone, n), n, "segment"))
        used["segment"] = f"segments of {seg_date}"
    parts.append(source_scores(sources.popular(plays, everyone, n), n, "popularity"))
    used["popularity"] = f"plays up to {day}"
    return parts, used


def staged_sources(written: dict) -> dict[str, int] | None:
    """The staged lists' rows per source (as gate.source_counts gives them: sources with rows only)
    from what their write measured; None when some row's source is none of SOURCES (the gate then
    counts the staged table)."""
    counts = {source: int(written[source] or 0) for source in SOURCES}
    if sum(counts.values()) != written["rows"]:
        return None
    return {source: n for source, n in counts.items() if n}


def publish(spark: SparkSession, cfg: Config, day: dt.date, expected_users: DataFrame, available: DataFrame,
            sources: dict[str, int] | None = None) -> tuple[dict, dict]:
    """The publish gate (models.gate) on D's staged lists; when every check passes they replace D's
    rows of gold.recommendations in one commit, else PublishRefused (exit code 5): the previous
    nights' lists stay what consumers see and D's staged rows stay for inspection. `sources`: the
    staged rows per source, when their write measured them (else counted here). Returns (the
    gate's outcome and measurements, what the checks measured of the lists: users, rows,
    min_per_user, sources)."""
    staged = delta_io.read(spark, cfg, GOLD_STAGED_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    previous, before = None, {}
    # the night before D that has published lists (from gold.recommendations' Delta log where it can)
    night_before = delta_io.latest_date(spark, cfg, GOLD_RECOMMENDATIONS, day - dt.timedelta(days=1))
    if night_before is not None:
        previous = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(night_before))
        before = gate.source_counts(previous)
    dislikes = None
    if delta_io.exists(spark, cfg, SILVER_FEEDBACK):
        dislikes = (delta_io.read(spark, cfg, SILVER_FEEDBACK)
                    .where((F.col("event") == "dislike") & (F.col("ts") < utc_midnight(day + dt.timedelta(days=1))))
                    .select("user_id", "track_id").distinct())
    conf = cfg.publish
    if sources is None:
        sources = gate.source_counts(staged)
    # the lists' checks and their overlap with the previous night's measured in one query
    problems, lists = gate.list_checks(staged, expected_users, available, cfg.recommend.k, previous if before else None)
    drift, measured = gate.collapsed(staged, previous, conf.max_changed_share, conf.max_source_shift, sources,
                                     lists.pop("overlap", None), before)
    problems += [problem for problem in (gate.disliked(staged, dislikes), drift) if problem]
    if problems:
        raise PublishRefused(f"recommend {day}: the lists were not published: {'; '.join(problems)}; consumers keep "
                             f"the previous night's, and D's rows stay in {GOLD_STAGED_RECOMMENDATIONS.full_name}")
    delta_io.replace_date(staged, cfg, GOLD_RECOMMENDATIONS, "run_date", day)
    log.info("recommend %s: the publish gate passed (%s); the lists are published", day, measured or "first night")
    return {"passed": True} | measured, lists | {"sources": sources}


_READ = object()


def served_config(spark: SparkSession, cfg: Config, day: dt.date, row=_READ) -> tuple[str, object, str]:
    """(configuration, ranker model or None, where the choice comes from) for D: the rank stage's
    choice of D (or of its latest night before D), else rank.default_config. `row`: the ranker's
    gold.models row when the caller has read it (None: there is none); read here otherwise."""
    if row is _READ:
        row = records.latest_model(spark, cfg, "ranker", day)
    if row is None:
        return cfg.rank.default_config, None, "rank.default_config: no night validated yet"
    served = json.loads(row["metrics"])["served"]
    model = ranker.load(row["path"]) if served == "ranker" else None
    return served, model, f"chosen by rank on {row['run_date']}"


def with_feedback(spark: SparkSession, cfg: Config, day: dt.date, blended: DataFrame, users: DataFrame) -> DataFrame:
    """The blend after the users' feedback up to D: dislikes (ever), likes, skips of the last skip_days."""
    if not delta_io.exists(spark, cfg, SILVER_FEEDBACK):
        return blended
    conf = cfg.recommend
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
    events = (delta_io.read(spark, cfg, SILVER_FEEDBACK).where(F.col("ts") < utc_midnight(day + dt.timedelta(days=1)))
              .join(users.select("user_id", "user_idx"), "user_id").join(tracks, "track_id"))

    def pairs(event: str, since: dt.date | None = None) -> DataFrame:
        chosen = events.where(F.col("event") == event)
        if since is not None:
            chosen = chosen.where(F.col("ts") >= utc_midnight(since))
        return chosen.select("user_idx", "track_idx").distinct()

    return apply_feedback(blended, pairs("dislike"), pairs("like"),
                          pairs("skip", day - dt.timedelta(days=conf.skip_days - 1)), conf.like_boost,
                          conf.skip_penalty)
