"""evaluate: every candidate source and baseline, ranked and scored the same way on a temporal split.

For run date D: plays before the last evaluate.test_days days (up to D) train, plays within them
test. Each source ranks the whole catalogue for every test user with history (full ranking, no
sampled negatives) and keeps K = evaluate.k:
- popularity: global most played tracks;
- most_played: the user's own most played tracks (a strong baseline on music data);
- item2vec: neighbours of the user's recent tracks in Word2Vec embeddings trained on the train plays;
- als: implicit ALS trained on the train plays with the configured hyperparameters;
- blend: recommend's weighted blend of the user's history, ALS, item2vec and popularity with the
  configured weights (see blend_parts for what is left out); tune_blend searches those weights on an
  earlier date's split.
Metrics (udfs.metrics): recall, precision, NDCG, MAP, hit rate at K; catalogue coverage; intra-list
diversity (distinct artists share, mean pairwise embedding cosine distance); novelty (mean
self-information of recommended tracks under train popularity). Besides, the lists written for D-1
are scored against the plays of D (model `served_yesterday`). Results replace D's rows of
gold.metrics, are printed as a table, and go into the HTML report of the date (jobs.report).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import als as als_job
from jobs import candidates, delta_io, embed, recommend, report
from jobs.config import Config, join_path
from jobs.errors import NotEnoughHistory
from jobs.scoring import ranked_lists, score_lists, temporal_split, truth_of
from jobs.tables import GOLD_METRICS, GOLD_RECOMMENDATIONS, SILVER_PLAYS, SILVER_TRACKS, SILVER_USERS
from udfs.metrics import RANKING_METRICS, novelty

log = logging.getLogger("setlist.evaluate")

NEXT_TRACK = "next_track:"


def beyond_accuracy(lists: DataFrame, train: DataFrame, tracks: DataFrame, embeddings: DataFrame, k: int
                    ) -> dict[str, float]:
    """Coverage, artist diversity, embedding diversity and novelty of ranked lists (user_idx, recs)."""
    catalogue = train.select("track_idx").distinct().count()
    popularity = candidates.track_popularity(train)
    total = train.count()
    info = popularity.select("track_idx", (-F.log2(F.col("plays") / F.lit(total))).alias("info"))
    info_map = info.agg(F.map_from_entries(F.collect_list(F.struct("track_idx", "info"))).alias("m"))
    top = lists.select("user_idx", F.slice("recs", 1, k).alias("recs"))
    exploded = top.select("user_idx", F.posexplode("recs").alias("pos", "track_idx"))
    covered = exploded.select("track_idx").distinct().count()
    artists = (exploded.join(tracks.select("track_idx", "artist_name"), "track_idx")
               .groupBy("user_idx").agg((F.countDistinct("artist_name") / F.count("*")).alias("d")))
    vectors = exploded.join(embeddings.select("track_idx", "vector"), "track_idx")
    a, b = vectors.alias("a"), vectors.alias("b")
    pairs = a.join(b, (F.col("a.user_idx") == F.col("b.user_idx")) & (F.col("a.pos") < F.col("b.pos")))
    dot = F.aggregate(F.zip_with("a.vector", "b.vector", lambda x, y: x * y), F.lit(0.0), lambda s, v: s + v)
    norm_a = F.sqrt(F.aggregate(F.transform("a.vector", lambda x: x * x), F.lit(0.0), lambda s, v: s + v))
    norm_b = F.sqrt(F.aggregate(F.transform("b.vector", lambda x: x * x), F.lit(0.0), lambda s, v: s + v))
    distance = pairs.select(F.col("a.user_idx").alias("user_idx"),
                            (1.0 - dot / F.greatest(norm_a * norm_b, F.lit(1e-12))).alias("dist"))
    per_user_distance = distance.groupBy("user_idx").agg(F.avg("dist").alias("d"))
    novel = top.crossJoin(info_map).select(novelty(F.col("recs"), F.col("m"), k).alias("n"))
    return {
        "coverage": covered / catalogue if catalogue else 0.0,
        "diversity_artists": float(artists.agg(F.avg("d")).first()[0] or 0.0),
        "diversity_embedding": float(per_user_distance.agg(F.avg("d")).first()[0] or 0.0),
        "novelty": float(novel.agg(F.avg("n")).first()[0] or 0.0),
    }


def source_lists(spark: SparkSession, cfg: Config, train: DataFrame, users: DataFrame, day: dt.date,
                 embeddings: DataFrame) -> dict[str, DataFrame]:
    k = cfg.evaluate.k
    als_model, neighbours, recent = fit_sources(spark, cfg, train, users, day, embeddings)
    lists = {
        "popularity": ranked_lists(candidates.popular(train, users, k), k),
        "most_played": ranked_lists(candidates.most_played(train, users, k), k),
        "item2vec": ranked_lists(candidates.item2vec(neighbours, recent), k),
        "als": als_job.top_n(als_model, users, k),
    }
    parts = blend_parts(cfg, train, users, als_model, neighbours, recent)
    lists["blend"] = ranked_lists(recommend.blend(parts, cfg.recommend), k)
    return lists


def fit_sources(spark: SparkSession, cfg: Config, train: DataFrame, users: DataFrame, day: dt.date,
                embeddings: DataFrame):
    """(ALS model, neighbour table, users' recent tracks), all from the train plays."""
    neighbours = candidates.neighbour_table(spark, embeddings, cfg.evaluate.neighbours)
    recent = candidates.recent_tracks(train, users, cfg.evaluate.recent_tracks)
    pairs = als_job.interactions(train, day, cfg.als)
    params = als_job.AlsParams(cfg.als.rank, cfg.als.reg_param, cfg.als.alpha)
    return als_job.fit(pairs, params, cfg.als), neighbours, recent


def blend_parts(cfg: Config, train: DataFrame, users: DataFrame, als_model, neighbours: DataFrame,
                recent: DataFrame) -> list[DataFrame]:
    """recommend's candidates from the sources evaluate can rebuild on the train plays (history, ALS,
    item2vec, popularity), each source's top recommend.candidates_per_source with its signal. The LSTM
    is judged on next tracks by train, and the segment source only matters for cold-start users,
    whom a temporal split cannot score; the diversification pass is left out."""
    n = cfg.recommend.candidates_per_source
    return [
        recommend.history_scores(train, users, n),
        recommend.source_scores(als_job.top_scored(als_model, users, n), n, "als"),
        recommend.source_scores(candidates.item2vec(neighbours, recent), n, "item2vec"),
        recommend.source_scores(candidates.popular(train, users, n), n, "popularity"),
    ]


def split(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[DataFrame, DataFrame]:
    """(train, truth) of the temporal split for `day`, persisted; NotEnoughHistory if no user can be scored."""
    conf = cfg.evaluate
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    train, test = temporal_split(plays, day, conf.test_days)
    train = embed.history(train, day, 0).persist()
    truth = truth_of(test, train).persist()
    if truth.isEmpty():
        train.unpersist()
        truth.unpersist()
        raise NotEnoughHistory(f"evaluate {day}: no user with plays both in the test window (last "
                               f"{conf.test_days} day(s), evaluate.test_days) and before it")
    return train, truth


def tune_blend(spark: SparkSession, cfg: Config, day: dt.date, grid: dict[str, list[float]]
               ) -> tuple[dict[str, float], list[tuple[dict[str, float], float]]]:
    """The blend weights with the best NDCG@evaluate.k on the temporal split of `day` (a validation
    date before the one reported on), searched over the product of `grid` (source -> weights; sources
    not in it keep their configured weight). Returns (best weights, [(weights, ndcg)] of every point)."""
    k = cfg.evaluate.k
    unknown = sorted(set(grid) - set(recommend.SOURCES))
    if unknown or not all(grid.values()):
        raise ValueError(f"tune_blend: grid needs a non-empty list of weights per source of "
                         f"{', '.join(recommend.SOURCES)}; got {grid}")
    spark.sparkContext.setCheckpointDir(join_path(cfg.warehouse, "_checkpoints", "evaluate"))
    train, truth = split(spark, cfg, day)
    users = truth.select("user_idx")
    cached = [train, truth]
    points: list[tuple[dict[str, float], float]] = []
    try:
        embeddings = embed.train(spark, train, cfg.embed,
                                 join_path(cfg.warehouse, "_scratch", "tune_blend", day.isoformat())).persist()
        cached.append(embeddings)
        als_model, neighbours, recent = fit_sources(spark, cfg, train, users, day, embeddings)
        parts = [p.persist() for p in blend_parts(cfg, train, users, als_model, neighbours, recent)]
        cached.extend(parts)
        names = list(grid)
        for values in itertools.product(*(grid[s] for s in names)):
            weights = dict(zip(names, values))
            conf = dataclasses.replace(cfg.recommend, **{f"weight_{s}": w for s, w in weights.items()})
            ndcg = score_lists(ranked_lists(recommend.blend(parts, conf), k), truth, k)["ndcg"]
            log.info("tune_blend %s: %s ndcg@%d %.4f", day, weights, k, ndcg)
            points.append((weights, ndcg))
    finally:
        for frame in cached:
            frame.unpersist()
    best = max(points, key=lambda p: p[1])[0]
    return best, points


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    k = cfg.evaluate.k
    spark.sparkContext.setCheckpointDir(join_path(cfg.warehouse, "_checkpoints", "evaluate"))
    train, truth = split(spark, cfg, day)
    try:
        users = truth.select("user_idx")
        log.info("evaluate %s: %d test users, %d train plays", day, truth.count(), train.count())
        embeddings = embed.train(spark, train, cfg.embed,
                                 join_path(cfg.warehouse, "_scratch", "evaluate", day.isoformat())).persist()
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS)
        results: dict[str, dict[str, float]] = {}
        for name, lists in source_lists(spark, cfg, train, users, day, embeddings).items():
            lists = lists.persist()
            results[name] = score_lists(lists, truth, k) | beyond_accuracy(lists, train, tracks, embeddings, k)
            lists.unpersist()
            log.info("evaluate %s: %s ndcg@%d %.4f recall@%d %.4f", day, name, k, results[name]["ndcg"], k,
                     results[name]["recall"])
        embeddings.unpersist()
    finally:
        train.unpersist()
        truth.unpersist()
    served = served_metrics(spark, cfg, day, k)
    write_metrics(spark, cfg, day, k, results | ({"served_yesterday": served} if served else {}))
    print(format_table(results, k), flush=True)
    if served:
        print(f"yesterday's recommendations against today's plays ({served['users']} users): "
              + ", ".join(f"{m}@{k} {served[m]:.4f}" for m in ("recall", "ndcg", "map", "hit_rate")), flush=True)
    path = report.write(spark, cfg, day, results, k, served)
    log.info("evaluate %s: report %s", day, path)
    return results


def served_metrics(spark: SparkSession, cfg: Config, day: dt.date, k: int) -> dict | None:
    """The lists written for D-1 scored against what their users actually played on D."""
    if not delta_io.exists(spark, cfg, GOLD_RECOMMENDATIONS):
        return None
    yesterday = (delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS)
                 .where(F.col("run_date") == F.lit(day - dt.timedelta(days=1))))
    users = delta_io.read(spark, cfg, SILVER_USERS).select("user_id", "user_idx")
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
    served = (yesterday.join(users, "user_id").join(tracks, "track_id")
              .select("user_idx", "track_idx", (-F.col("rank")).cast("double").alias("score")))
    lists = ranked_lists(served, k)
    today = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") == F.lit(day))
    truth = (today.join(lists.select("user_idx"), "user_idx").groupBy("user_idx")
             .agg(F.array_sort(F.collect_set("track_idx")).alias("truth")))
    if truth.isEmpty():
        return None
    return score_lists(lists, truth, k)


def write_metrics(spark: SparkSession, cfg: Config, day: dt.date, k: int, results: dict) -> None:
    rows = [(day, model, metric, k, float(value), int(values["users"]))
            for model, values in results.items() for metric, value in values.items() if metric != "users"]
    frame = spark.createDataFrame(rows, "run_date date, model string, metric string, k int, value double, users long")
    # train writes the next_track:* rows of the same date; keep them.
    delta_io.replace_date(frame, cfg, GOLD_METRICS, "run_date", day, also=f"NOT model LIKE '{NEXT_TRACK}%'")


def format_table(results: dict, k: int) -> str:
    metrics = [m for m in next(iter(results.values())) if m != "users"]
    names = [f"{m}@{k}" if m in RANKING_METRICS else m for m in metrics]
    width = max(len(n) for n in names) + 2
    lines = [f"{'model':<12}" + "".join(f"{n:>{width}}" for n in names)]
    for model, values in results.items():
        lines.append(f"{model:<12}" + "".join(f"{values[m]:>{width}.4f}" for m in metrics))
    return "\n".join(lines)
