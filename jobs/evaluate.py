"""evaluate: the lists a night served, and every list it could have served, against what users played.

For run date D the night scored is N = D - evaluate.test_days (the lists of N are for the days
after it), and the truth of a user is every distinct track they played in the test window (N, D].
Its candidates (gold.candidates of N, with the features the rank stage learns from) are ordered by
every configuration (the ranker N served or would have served, the linear blend, the users' most
played tracks) and by every single source alone (ALS, the LSTM's next tracks, item2vec neighbours,
the taste segment, global popularity), and cut to K = evaluate.k; the lists actually served for N
(gold.recommendations, model `served_yesterday`) are scored the same way. No model is refitted:
each was trained on plays up to N by the nightly run, so nothing scored saw the test window.
Metrics (udfs.metrics, models.scoring): recall, precision, NDCG, MAP, hit rate at K; catalogue
coverage; intra-list diversity; novelty. A served NDCG below the users' own most played tracks is a
regression: logged as a warning, flagged in the result (and so in the nightly summary) and in the
report. Results replace the evaluate stage's rows of D in gold.metrics, are printed as a table, and
go into the HTML report of the date (models.report).
"""
from __future__ import annotations

import datetime as dt
import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io, records
from jobs.core.config import Config
from jobs.core.errors import NotEnoughHistory
from jobs.core.frames import CacheScope
from jobs.core.paths import location
from jobs.core.records import write_metrics
from jobs.core.tables import (GOLD_CANDIDATES, GOLD_METRICS, GOLD_RECOMMENDATIONS, GOLD_TRACK_CLUSTERS,
                              GOLD_TRACK_EMBEDDINGS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_TRACKS, SILVER_USERS)
from models import ranker, report, storage
from models.blend import SOURCES
from models.scoring import beyond_accuracy_named, catalogue_of, named_lists, ranked_lists, score_named, truth_of
from udfs.metrics import RANKING_METRICS
from udfs.rows import rows_frame

log = logging.getLogger("setlist.evaluate")

SERVED = "served_yesterday"
# the history source alone is the users' most played tracks: scored once, as most_played
SINGLE_SOURCES = tuple(s for s in SOURCES if s != "history")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    k = cfg.evaluate.k
    night = day - dt.timedelta(days=cfg.evaluate.test_days)
    with CacheScope() as cache:
        candidates = cache(night_candidates(spark, cfg, night))
        plays = delta_io.read(spark, cfg, SILVER_PLAYS)
        test = plays.where(F.col("play_date").between(F.lit(night + dt.timedelta(days=1)), F.lit(day)))
        truth = cache(truth_of(test, candidates.select("user_idx").distinct()))
        n_truth = truth.count()
        if not n_truth:
            raise NotEnoughHistory(f"evaluate {day}: no user with candidates on {night} played in ({night}, {day}] "
                                   f"(evaluate.test_days={cfg.evaluate.test_days})")
        before = plays.where(F.col("play_date") <= F.lit(night))
        catalogue = catalogue_of(before, delta_io.read(spark, cfg, SILVER_TRACKS), latest_embeddings(spark, cfg, night))
        cache(catalogue.info)
        log.info("evaluate %s: the lists of %s against the plays of %d test users", day, night, n_truth)
        every = all_lists(spark, cfg, night, candidates, k)
        named = cache(named_lists(every))  # every list scored in the same few passes
        accuracy = score_named(named, truth, k, names=list(every))
        beyond = beyond_accuracy_named(named, catalogue, k, names=list(every))
        results: dict[str, dict[str, float]] = {name: accuracy[name] | beyond[name] for name in every}
        for name, values in results.items():
            log.info("evaluate %s: %s ndcg@%d %.4f recall@%d %.4f", day, name, k, values["ndcg"], k, values["recall"])
    note = regression_note(results, k)
    if "REGRESSION" in note:
        log.warning("evaluate %s: %s", day, note)
    write_metrics(spark, cfg, day, "evaluate", k, results)
    print(format_table(results, k), flush=True)
    print(f"evaluate {day}: {note}", flush=True)
    path = write_report(spark, cfg, day, night, results, k, note)
    log.info("evaluate %s: report %s", day, path)
    return results | {"note": note}


def night_candidates(spark: SparkSession, cfg: Config, night: dt.date) -> DataFrame:
    if not delta_io.exists(spark, cfg, GOLD_CANDIDATES):
        raise NotEnoughHistory(f"evaluate: no candidates in {GOLD_CANDIDATES.full_name} yet (recommend stores them)")
    candidates = delta_io.read(spark, cfg, GOLD_CANDIDATES).where(F.col("run_date") == F.lit(night))
    if candidates.isEmpty():
        raise NotEnoughHistory(f"evaluate: no candidates of {night} in {GOLD_CANDIDATES.full_name} "
                               f"(recommend did not run for {night})")
    return candidates


def latest_embeddings(spark: SparkSession, cfg: Config, night: dt.date) -> DataFrame:
    emb_date = delta_io.latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, night)
    if emb_date is None:
        return rows_frame(spark, [], GOLD_TRACK_EMBEDDINGS.schema).select("track_idx", "vector")
    return delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(emb_date))


def night_ranker(spark: SparkSession, cfg: Config, night: dt.date):
    """The ranker the rank stage trained for `night` (served or not), or None."""
    row = records.latest_model(spark, cfg, "ranker", night)
    if row is None or row["run_date"] != night or not row["path"]:
        return None
    return ranker.load(row["path"])


def all_lists(spark: SparkSession, cfg: Config, night: dt.date, candidates: DataFrame, k: int
              ) -> dict[str, DataFrame]:
    """(user_idx, recs) of every configuration and single source over the night's candidates, and the
    lists served that night."""
    found = candidates.agg(*[F.count(f"{s}_rank").alias(s) for s in SINGLE_SOURCES]).first()  # one pass
    present = {s for s in SINGLE_SOURCES if found[s]}
    configs = {"most_played": None, "blend": None}
    model = night_ranker(spark, cfg, night)
    if model is not None:
        configs = {"ranker": model} | configs
    lists = {name: ranked_lists(ranker.score_config(candidates, name, m), k) for name, m in configs.items()}
    lists |= {s: ranked_lists(ranker.score_config(candidates, s), k) for s in SINGLE_SOURCES if s in present}
    served = served_lists(spark, cfg, night, k)
    if served is not None:
        lists[SERVED] = served
    return lists


SAME_SCORE = 1e-9  # NDCG differences below this are floating-point noise


def regression_note(results: dict, k: int) -> str:
    """One line: the served lists against the users' most played tracks (REGRESSION when below)."""
    if SERVED not in results:
        return "no served lists to score for that night"
    served, favourites = results[SERVED]["ndcg"], results["most_played"]["ndcg"]
    # the same lists scored through two paths differ in the last bits (summation order): not a regression
    verdict = "REGRESSION: below" if served < favourites - SAME_SCORE else "at or above"
    return (f"served ndcg@{k} {served:.4f} vs most_played {favourites:.4f} ({verdict} the users' own most played "
            f"tracks)")


def served_lists(spark: SparkSession, cfg: Config, night: dt.date, k: int) -> DataFrame | None:
    """(user_idx, recs) of the lists written for `night`, or None when there are none."""
    if not delta_io.exists(spark, cfg, GOLD_RECOMMENDATIONS):
        return None
    written = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(night))
    if written.isEmpty():
        return None
    users = delta_io.read(spark, cfg, SILVER_USERS).select("user_id", "user_idx")
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_id", "track_idx")
    served = (written.join(users, "user_id").join(tracks, "track_id")
              .select("user_idx", "track_idx", (-F.col("rank")).cast("double").alias("score")))
    return ranked_lists(served, k)


def write_report(spark: SparkSession, cfg: Config, day: dt.date, night: dt.date, results: dict, k: int,
                 note: str) -> str:
    emb_date = delta_io.latest_date(spark, cfg, GOLD_TRACK_EMBEDDINGS, day)  # the cadence may reuse older ones
    embeddings = None
    if emb_date is not None:
        embeddings = delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(emb_date))
        clusters = delta_io.read_or_empty(spark, cfg, GOLD_TRACK_CLUSTERS).where(F.col("run_date") == F.lit(emb_date))
        embeddings = embeddings.join(clusters.select("track_idx", "cluster"), "track_idx", "left")
    recommended = None
    if delta_io.exists(spark, cfg, GOLD_RECOMMENDATIONS):
        recommended = delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(day))
    page = report.render(day, night, results, k, note, day_quality(spark, cfg, day),
                         delta_io.read(spark, cfg, GOLD_METRICS),
                         delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day)),
                         recommended, embeddings, emb_date)
    return storage.write_bytes(location(cfg, "reports", f"evaluate-{day.isoformat()}.html"), page.encode("utf-8"))


def day_quality(spark: SparkSession, cfg: Config, day: dt.date) -> tuple[dict, list[str]]:
    """(measures, alert lines) of D's clean (silver.clean_runs), for the report."""
    if not delta_io.exists(spark, cfg, SILVER_CLEAN_RUNS):
        return {}, []
    row = delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).where(F.col("ingest_date") == F.lit(day)).first()
    if row is None:
        return {}, []
    measures = {"bronze rows": row["bronze_rows"], "plays": row["plays"], "quarantined": row["quarantined"],
                "duplicates": row["duplicates"], "new users": row["new_users"], "new tracks": row["new_tracks"],
                "share without a recording id": row["missing_mbid_share"]}
    measures |= {f"quarantined: {reason}": n for reason, n in sorted((row["quarantine_reasons"] or {}).items())}
    return measures, json.loads(row["alerts"]) if row["alerts"] else []


def format_table(results: dict, k: int) -> str:
    metrics = [m for m in next(iter(results.values())) if m != "users"]
    names = [f"{m}@{k}" if m in RANKING_METRICS else m for m in metrics]
    width = max(len(n) for n in names) + 2
    lines = [f"{'model':<17}" + "".join(f"{n:>{width}}" for n in names)]
    for model, values in results.items():
        lines.append(f"{model:<17}" + "".join(f"{values[m]:>{width}.4f}" for m in metrics))
    return "\n".join(lines)
