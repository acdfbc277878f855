"""embed: track embeddings by Word2Vec over listening sessions (item2vec) into gold.track_embeddings.

For run date D: the plays of the last embed.history_days days up to D, grouped into sessions and
ordered by position, are the sentences; a track is a word. embed.engine picks gensim (skip-gram,
negative sampling; sessions streamed from a stored copy, partition by partition) or Spark MLlib's
distributed Word2Vec (models.embeddings). Tracks played fewer than embed.min_count times are left
out and counted. D's partition of the output is replaced, so a rerun replaces rather than appends.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config
from jobs.core.errors import InputError
from jobs.core.frames import CacheScope
from jobs.core.paths import location
from jobs.core.records import input_versions, record_model
from jobs.core.tables import GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS, SILVER_TRACKS
from models.embeddings import Word2VecParams, choose_engine, train_word2vec
from udfs.dates import plays_within

log = logging.getLogger("setlist.embed")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.embed
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
    with CacheScope() as cache:
        counts = cache(plays.groupBy("track_idx").agg(F.count("*").alias("plays")))
        totals = counts.agg(F.count("*").alias("tracks"), F.sum("plays").alias("plays"),
                            F.sum(F.when(F.col("plays") < conf.min_count, 1).otherwise(0)).alias("rare")).first()
        if not totals["tracks"]:
            raise InputError(f"no plays in {SILVER_PLAYS.full_name} up to {day} within embed.history_days="
                             f"{conf.history_days}: run `clean` first")
        engine = choose_engine(conf.engine, int(totals["plays"]), conf.spark_above)
        log.info("embed %s: training %s Word2Vec on %d plays of %d tracks (%d rare tracks below min_count=%d left out)",
                 day, engine, totals["plays"], totals["tracks"], totals["rare"], conf.min_count)
        vectors = train_word2vec(spark, plays, engine, Word2VecParams.of(conf),
                                 location(cfg, "scratch", "embed", day.isoformat()))
        version = f"item2vec-{engine}-{day.isoformat()}"
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_idx", "track_id")
        out = (vectors.join(tracks, "track_idx").join(counts, "track_idx")
               .withColumn("run_date", F.lit(day)).withColumn("model_version", F.lit(version)))
        embedded = delta_io.replace_date(out, cfg, GOLD_TRACK_EMBEDDINGS, "run_date", day)["rows"]
    log.info("embed %s: %d tracks embedded (%s) into %s", day, embedded, version, GOLD_TRACK_EMBEDDINGS.full_name)
    record_model(spark, cfg, day, "word2vec", version, engine, spark.sparkContext.defaultParallelism,
                 dataclasses.asdict(Word2VecParams.of(conf)) | {"history_days": conf.history_days},
                 {"tracks": totals["tracks"], "embedded": embedded, "rare_left_out": totals["rare"]},
                 GOLD_TRACK_EMBEDDINGS.path(cfg), input_versions(spark, cfg, SILVER_PLAYS))
    return {"tracks": totals["tracks"], "embedded": embedded, "rare_left_out": totals["rare"], "version": version}
