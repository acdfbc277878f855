"""evaluate: every candidate source and baseline, ranked and scored the same way on a temporal split.

For run date D: plays before the last evaluate.test_days days (up to D) train, plays within them
test. Each source ranks the whole catalogue for every test user with history (full ranking, no
sampled negatives) and keeps K = evaluate.k:
- popularity: global most played tracks;
- most_played: the user's own most played tracks (a strong baseline on music data);
- item2vec: neighbours of the user's recent tracks in Word2Vec embeddings trained on the train plays;
- als: implicit ALS trained on the train plays with the configured hyperparameters;
- blend: recommend's weighted blend (models.blend) of the user's history, ALS, item2vec and
  popularity with the configured weights; tune_blend searches those weights on an earlier date's
  split. The LSTM is judged on next tracks by train; segments serve cold-start users, whom a
  temporal split cannot score; the diversification pass is left out.
Metrics (udfs.metrics, models.scoring): recall, precision, NDCG, MAP, hit rate at K; catalogue
coverage; intra-list diversity; novelty. Besides, the lists written for D-1 are scored against the
plays of D (model `served_yesterday`). Results replace the evaluate stage's rows of D in
gold.metrics, are printed as a table, and go into the HTML report of the date (models.report).
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import NotEnoughHistory
from jobs.core.frames import CacheScope
from jobs.core.paths import location
from jobs.core.records import write_metrics
from jobs.core.tables import (GOLD_METRICS, GOLD_RECOMMENDATIONS, GOLD_TRACK_CLUSTERS, GOLD_TRACK_EMBEDDINGS,
                              SILVER_PLAYS, SILVER_TRACKS, SILVER_USERS)
from models import report, sources, storage
from models.als import AlsParams, AlsSettings, top_n, top_scored
from models.blend import SOURCES, blend, history_scores, source_scores
from models.embeddings import Word2VecParams, train_word2vec
from models.scoring import beyond_accuracy, ranked_lists, score_lists, temporal_split, truth_of
from udfs.metrics import RANKING_METRICS

log = logging.getLogger("setlist.evaluate")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    k = cfg.evaluate.k
    spark.sparkContext.setCheckpointDir(location(cfg, "checkpoints", "evaluate"))
    with CacheScope() as cache:
        train, truth = split(spark, cfg, day, cache)
        users = truth.select("user_idx")
        log.info("evaluate %s: %d test users, %d train plays", day, truth.count(), train.count())
        embeddings = cache(embeddings_of(spark, cfg, train, "evaluate", day))
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS)
        results: dict[str, dict[str, float]] = {}
        for name, lists in source_lists(spark, cfg, train, users, day, embeddings).items():
            lists = cache(lists)
            results[name] = score_lists(lists, truth, k) | beyond_accuracy(lists, train, tracks, embeddings, k)
            cache.release(lists)
            log.info("evaluate %s: %s ndcg@%d %.4f recall@%d %.4f", day, name, k, results[name]["ndcg"], k,
                     results[name]["recall"])
    served = served_metrics(spark, cfg, day, k)
    write_metrics(spark, cfg, day, "evaluate", k, results | ({"served_yesterday": served} if served else {}))
    print(format_table(results, k), flush=True)
    if served:
        print(f"yesterday's recommendations against today's plays ({served['users']} users): "
              + ", ".join(f"{m}@{k} {served[m]:.4f}" for m in ("recall", "ndcg", "map", "hit_rate")), flush=True)
    path = write_report(spark, cfg, day, results, k, served)
    log.info("evaluate %s: report %s", day, path)
    return results


def split(spark: SparkSession, cfg: Config, day: dt.date, cache: CacheScope) -> tuple[DataFrame, DataFrame]:
    """(train, truth) of the temporal split for `day`, cached; NotEnoughHistory if no user can be scored."""
    train, test = temporal_split(delta_io.read(spark, cfg, SILVER_PLAYS), day, cfg.evaluate.test_days)
    train = cache(train)
    truth = cache(truth_of(test, train))
    if truth.isEmpty():
        raise NotEnoughHistory(f"evaluate {day}: no user with plays both in the test window (last "
                               f"{cfg.evaluate.test_days} day(s), evaluate.test_days) and before it")
    return train, truth


def embeddings_of(spark: SparkSession, cfg: Config, train: DataFrame, purpose: str, day: dt.date) -> DataFrame:
    return train_word2vec(spark, train, cfg.embed.engine, Word2VecParams.of(cfg.embed),
                          location(cfg, "scratch", purpose, day.isoformat()))


def fit_sources(spark: SparkSession, cfg: Config, train: DataFrame, users: DataFrame, day: dt.date,
                embeddings: DataFrame):
    """(ALS model, neighbour table, users' recent tracks), all from the train plays."""
    neighbours = sources.neighbour_table(spark, embeddings, cfg.recommend.neighbours)
    recent = sources.recent_tracks(train, users, cfg.recommend.recent_tracks)
    settings = AlsSettings.of(cfg.als)
    model = settings.fit(settings.interactions(train, day), AlsParams(cfg.als.rank, cfg.als.reg_param, cfg.als.alpha))
    return model, neighbours, recent


def blend_parts(cfg: Config, train: DataFrame, users: DataFrame, als_model, neighbours: DataFrame,
                recent: DataFrame) -> list[DataFrame]:
    """recommend's candidates from the sources evaluate can rebuild on the train plays (history, ALS,
    item2vec, popularity), each source's top recommend.candidates_per_source with its signal."""
    n = cfg.recommend.candidates_per_source
    return [
        history_scores(train, users, n),
        source_scores(top_scored(als_model, users, n), n, "als"),
        source_scores(sources.item2vec(neighbours, recent), n, "item2vec"),
        source_scores(sources.popular(train, users, n), n, "popularity"),
    ]


def source_lists(spark: SparkSession, cfg: Config, train: DataFrame, users: DataFrame, day: dt.date,
                 embeddings: DataFrame) -> dict[str, DataFrame]:
    k = cfg.evaluate.k
    als_model, neighbours, recent = fit_sources(spark, cfg, train, users, day, embeddings)
    parts = blend_parts(cfg, train, users, als_model, neighbours, recent)
    return {
        "popularity": ranked_lists(sources.popular(train, users, k), k),
        "most_played": ranked_lists(sources.most_played(train, users, k), k),
        "item2vec": ranked_lists(sources.item2vec(neighbours, recent), k),
        "als": top_n(als_model, users, k),
        "blend": ranked_lists(blend(parts, cfg.recommend.weights()), k),
    }


def tune_blend(spark: SparkSession, cfg: Config, day: dt.date, grid: dict[str, list[float]]
               ) -> tuple[dict[str, float], list[tuple[dict[str, float], float]]]:
    """The blend weights with the best NDCG@evaluate.k on the temporal split of `day` (a validation
    date before the one reported on), searched over the product of `grid` (source -> weights; sources
    not in it keep their configured weight). Returns (best weights, [(weights, ndcg)] of every point)."""
    k = cfg.evaluate.k
    if set(grid) - set(SOURCES) or not all(grid.values()):
        raise ValueError(f"tune_blend: grid needs a non-empty list of weights per source of "
                         f"{', '.join(SOURCES)}; got {grid}")
    spark.sparkContext.setCheckpointDir(location(cfg, "checkpoints", "evaluate"))
    points: list[tuple[dict[str, float], float]] = []
    with CacheScope() as cache:
        train, truth = split(spark, cfg, day, cache)
        users = truth.select("user_idx")
        embeddings = cache(embeddings_of(spark, cfg, train, "tune_blend", day))
        als_model, neighbours, recent = fit_sources(spark, cfg, train, users, day, embeddings)
        parts = [cache(p) for p in blend_parts(cfg, train, users, als_model, neighbours, recent)]
        names = list(grid)
        for values in itertools.product(*(grid[s] for s in names)):
            weights = dict(zip(names, values))
            ndcg = score_lists(ranked_lists(blend(parts, cfg.recommend.weights() | weights), k), truth, k)["ndcg"]
            log.info("tune_blend %s: %s ndcg@%d %.4f", day, weights, k, ndcg)
            points.append((weights, ndcg))
    return max(points, key=lambda p: p[1])[0], points


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


def write_report(spark: SparkSession, cfg: Config, day: dt.date, results: dict, k: int, served: dict | None) -> str:
    emb_date = delta_io.latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, day)  # the cadence may reuse older ones
    embeddings = None
    if emb_date is not None:
        embeddings = delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(emb_date))
        clusters = delta_io.read_or_empty(spark, cfg, GOLD_TRACK_CLUSTERS).where(F.col("run_date") == F.lit(emb_date))
        embeddings = embeddings.join(clusters.select("track_idx", "cluster"), "track_idx", "left")
    recommended = None
    if delta_io.exists(spark, cfg, GOLD_RECOMMENDATIONS):
        recommended = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    page = report.render(day, results, k, served, delta_io.read(spark, cfg, GOLD_METRICS),
                         delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day)),
                         recommended, embeddings, emb_date)
    return storage.write_bytes(location(cfg, "reports", f"evaluate-{day.isoformat()}.html"), page.encode("utf-8"))


def format_table(results: dict, k: int) -> str:
    metrics = [m for m in next(iter(results.values())) if m != "users"]
    names = [f"{m}@{k}" if m in RANKING_METRICS else m for m in metrics]
    width = max(len(n) for n in names) + 2
    lines = [f"{'model':<12}" + "".join(f"{n:>{width}}" for n in names)]
    for model, values in results.items():
        lines.append(f"{model:<12}" + "".join(f"{values[m]:>{width}.4f}" for m in metrics))
    return "\n".join(lines)
