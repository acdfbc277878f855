"""embed: track embeddings by Word2Vec over listening sessions (item2vec) into gold.track_embeddings.

For run date D: the plays of the last embed.history_days days up to D, grouped into sessions and
ordered by position, are the sentences; a track is a word. embed.engine picks gensim (skip-gram,
negative sampling; sessions streamed from a stored copy, partition by partition) or Spark MLlib's
distributed Word2Vec. Tracks played fewer than embed.min_count times are left out and counted.
D's partition of the output is replaced, so a rerun replaces rather than appends.
"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io
from jobs.config import Config, EmbedConf, join_path
from jobs.errors import InputError
from jobs.tables import GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS, SILVER_TRACKS
from models.embeddings import SessionCorpus, Word2VecParams, train_gensim

log = logging.getLogger("setlist.embed")


def history(plays: DataFrame, day: dt.date, days: int) -> DataFrame:
    """Plays on or before `day`, limited to the last `days` days (0: all)."""
    kept = plays.where(F.col("play_date") <= F.lit(day))
    if days:
        kept = kept.where(F.col("play_date") > F.lit(day - dt.timedelta(days=days)))
    return kept


def sentences(plays: DataFrame) -> DataFrame:
    """One row per session: tokens, the session's track_idx values as strings in play order."""
    ordered = F.array_sort(F.collect_list(F.struct("session_position", "track_idx")))
    return (plays.groupBy("user_id", "session_id").agg(ordered.alias("_s"))
            .select("session_id", F.transform("_s", lambda x: x["track_idx"].cast("string")).alias("tokens")))


def params_of(conf: EmbedConf) -> Word2VecParams:
    return Word2VecParams(conf.vector_size, conf.window, conf.min_count, conf.negative, conf.epochs,
                          conf.learning_rate, conf.seed)


def train(spark: SparkSession, plays: DataFrame, conf: EmbedConf, scratch: str) -> DataFrame:
    """(track_idx int, vector array<float>) for every track with at least min_count plays."""
    sessions = sentences(plays)
    if conf.engine == "spark":
        w2v = Word2Vec(vectorSize=conf.vector_size, minCount=conf.min_count, windowSize=conf.window,
                       maxIter=conf.epochs, stepSize=conf.learning_rate, seed=conf.seed,
                       inputCol="tokens", outputCol="v")
        vectors = w2v.fit(sessions).getVectors()
        return vectors.select(F.col("word").cast("int").alias("track_idx"),
                              vector_to_array("vector", "float32").alias("vector"))
    # gensim reads a stored copy of the sessions once per pass, one partition at a time.
    sessions.write.mode("overwrite").parquet(scratch)
    stored = spark.read.parquet(scratch)

    def stream():
        for row in stored.select("tokens").toLocalIterator(prefetchPartitions=True):
            yield row["tokens"]

    keys, matrix = train_gensim(SessionCorpus(stream), params_of(conf))
    frame = pd.DataFrame({"track_idx": keys.astype(np.int32), "vector": list(matrix)})
    return spark.createDataFrame(frame, "track_idx int, vector array<float>")


def run(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.embed
    plays = history(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
    counts = plays.groupBy("track_idx").agg(F.count("*").alias("plays")).persist()
    try:
        totals = counts.agg(F.count("*").alias("tracks"), F.sum(F.when(F.col("plays") < conf.min_count, 1)
                                                                .otherwise(0)).alias("rare")).first()
        if not totals["tracks"]:
            raise InputError(f"no plays in {SILVER_PLAYS.full_name} up to {day} within embed.history_days="
                             f"{conf.history_days}: run `clean` first")
        log.info("embed %s: training %s Word2Vec on %d tracks' sessions (%d rare tracks below min_count=%d left out)",
                 day, conf.engine, totals["tracks"], totals["rare"], conf.min_count)
        vectors = train(spark, plays, conf, join_path(cfg.warehouse, "_scratch", "embed", day.isoformat()))
        version = f"item2vec-{conf.engine}-{day.isoformat()}"
        tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select("track_idx", "track_id")
        out = (vectors.join(tracks, "track_idx").join(counts, "track_idx")
               .withColumn("run_date", F.lit(day)).withColumn("model_version", F.lit(version)))
        delta_io.replace_date(out, cfg, GOLD_TRACK_EMBEDDINGS, "run_date", day)
    finally:
        counts.unpersist()
    embedded = delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(day)).count()
    log.info("embed %s: %d tracks embedded (%s) into %s", day, embedded, version, GOLD_TRACK_EMBEDDINGS.full_name)
    return {"tracks": totals["tracks"], "embedded": embedded, "rare_left_out": totals["rare"], "version": version}
