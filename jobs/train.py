"""train: the LSTM next-track model, data-parallel on the Spark cluster (Horovod or TorchDistributor).

For run date D:
1. sequences: every play of the last train.history_days days with the train.window tracks of its
   session before it (0-padded) becomes an example in gold.sequences; examples whose play falls in
   the last train.validation_days days validate, the others train. Written as train.sequence_files
   Parquet files so the ranks have files to share.
2. training: the driver lists the train split's files in the current Delta snapshot and deals them
   to train.world_size ranks (models.feed); `horovod.spark.run` (one rank per Spark task) or
   TorchDistributor runs models.distributed.train; rank 0 checkpoints every epoch under
   <warehouse>/_checkpoints/lstm/<D>/<input key>: a rerun on the same input resumes after the latest
   checkpoint (when that run trained every epoch, no rank is launched: its record is used), a rerun
   on changed input (new plays, other settings) starts fresh.
3. export: the final weights, TorchScript and ONNX (models.export) into a new folder
   <warehouse>/models/lstm/<D>/<run>, each checked to give the same top-k as the trained model on
   validation examples; the gold.models row, written last, publishes it.
4. evaluation: next-track hit rate and NDCG at evaluate.k on validation examples (full ranking) for
   the LSTM, global popularity, the user's most played tracks and item2vec neighbours of the last
   track, with the same metric definitions as evaluate; a gold.models row and the train stage's
   gold.metrics rows (models `next_track:<source>`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import delta_io
from jobs.core.config import Config, TrainConf
from jobs.core.errors import NotEnoughHistory
from jobs.core.frames import CacheScope
from jobs.core.paths import location, new_artifact
from jobs.core.records import input_versions, record_model, write_metrics
from jobs.core.tables import GOLD_SEQUENCES, GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS
from models import feed, sources
from models.distributed import LOCAL, TrainSpec, finished_run, latest_checkpoint, load_checkpoint, run_backend
from models.distributed import train as train_ranks
from models.embeddings import Word2VecParams, choose_engine, train_word2vec
from models.export import export
from models.lstm import LstmParams, NextTrackLSTM, Vocabulary
from models.scoring import ranked_lists, score_named
from models.serving import next_track_scores, saved_model
from udfs.dates import plays_within

log = logging.getLogger("setlist.train")

NEXT_TRACK = "next_track:"


def run(spark: SparkSession, cfg: Config, day: dt.date, backend: str | None = None) -> dict:
    conf = cfg.train
    counts = write_sequences(spark, cfg, day)
    engine = training_engine(conf, counts["train"], backend)
    # In the driver: one process doing what world_size ranks do together, one step over
    # world_size x batch_size examples at the ranks' summed learning rate (models.distributed scales
    # the rate by the ranks, as Horovod's averaged gradients need).
    world = 1 if engine == LOCAL else conf.world_size
    per_rank = conf.world_size // world  # the ranks' share each of `world` processes takes: 1, or all
    batch_size = conf.batch_size * per_rank
    vocabulary = training_vocabulary(spark, cfg, day)
    vocab = vocabulary.size
    loss = resolved_loss(conf, vocab)
    shard_plan = feed.plan(split_files(spark, cfg, day, "train"), world, batch_size)
    lstm = LstmParams(vocab, conf.embed_dim, conf.hidden, conf.layers, conf.dropout)
    # Checkpoints belong to one training input: the examples' content and every setting that shapes
    # the run. A rerun on the same input resumes; on other input (new plays, other sizes) starts fresh.
    input_key = training_input_key(spark, cfg, day, lstm, shard_plan.steps_per_epoch, loss, engine)
    spec = TrainSpec(
        lstm=lstm, shards=shard_plan.shards, steps_per_epoch=shard_plan.steps_per_epoch, epochs=conf.epochs,
        batch_size=batch_size, learning_rate=conf.learning_rate * per_rank, loss=loss, num_sampled=conf.num_sampled,
        checkpoint_dir=location(cfg, "checkpoints", "lstm", day.isoformat(), input_key), seed=conf.seed,
        pretrained=pretrained(spark, cfg, day), vocabulary=vocabulary.tracks.tolist())
    where = (f"in the driver ({counts['train']:,} train examples, under train.driver_below_examples "
             f"{conf.driver_below_examples:,})" if engine == LOCAL else f"{engine} with {world} ranks")
    log.info("train %s: %d train / %d valid examples, vocabulary %d tracks with >= %d plays (+ padding and one "
             "shared token), %s softmax, %s, %d steps per epoch of %d examples, rows per rank %s", day,
             counts["train"], counts["valid"], len(vocabulary.tracks), conf.min_plays, loss, where,
             shard_plan.steps_per_epoch, batch_size * world, shard_plan.rows)
    results = finished_run(spec)
    if results is not None:
        log.info("train %s: a run of this input already trained all %d epochs (%s with %d ranks; checkpoints in "
                 "%s): its model is used, no rank is launched", day, conf.epochs, results[0]["backend"],
                 results[0]["world_size"], spec.checkpoint_dir)
    elif engine == LOCAL:
        results = [train_ranks(spec, LOCAL) | {"attempt": 1}]
    else:
        results = run_backend(spark, spec, engine, world, timeout_s=conf.timeout_minutes * 60.0)
    rank0 = next(r for r in results if r["rank"] == 0)
    log.info("train %s: loss by epoch %s (resumed after epoch %d), device %s", day,
             [round(x, 4) for x in rank0["loss_by_epoch"]], rank0["resumed_from"], rank0["device"])
    model = load_final(spec)
    sample = np.stack(delta_io.read(spark, cfg, GOLD_SEQUENCES).where(
        (F.col("run_date") == F.lit(day)) & (F.col("split") == "valid")).select("x").limit(256).toPandas()["x"])
    store = new_artifact(cfg, "lstm", day)  # published by the gold.models row below, once complete
    checks = export(model, store, conf.window, vocabulary, sample, cfg.evaluate.k, conf.export_onnx)
    metrics = evaluate_next_track(spark, cfg, day, model, vocabulary)
    k = cfg.evaluate.k
    summary = {f"{name}_{m}@{k}": round(v[m], 4) for name, v in metrics.items() for m in ("hit_rate", "ndcg")}
    params = {name: getattr(conf, name) for name in ("window", "embed_dim", "hidden", "layers", "dropout",
                                                     "num_sampled", "epochs", "batch_size", "learning_rate",
                                                     "min_plays")} | {"loss": loss, "tracks": len(vocabulary.tracks)}
    record_model(spark, cfg, day, "lstm", f"lstm-{day.isoformat()}", rank0["backend"], rank0["world_size"],
                 params | {"vocab": vocab, "input_key": input_key},
                 summary | {"loss_by_epoch": rank0["loss_by_epoch"], "export": checks}, store,
                 input_versions(spark, cfg, SILVER_PLAYS, GOLD_SEQUENCES, GOLD_TRACK_EMBEDDINGS))
    log.info("train %s: next-track %s", day, summary)
    return {"ranks": results, "metrics": metrics, "export": checks, "summary": summary,
            "examples": counts["train"] + counts["valid"]}


def training_engine(conf: TrainConf, examples: int, backend: str | None = None) -> str:
    """Where a night trains: `local` (the driver process) below train.driver_below_examples training
    examples, where launching the ranks costs more than the epochs (about 14 s of Horovod's start and
    teardown around 1 s of epochs on the demo's night: README, "Small nights train in the driver"),
    else train.backend. A backend named on the command line (`--backend`) always launches its ranks."""
    if backend is not None:
        return backend
    return LOCAL if examples < conf.driver_below_examples else conf.backend


def resolved_loss(conf: TrainConf, vocab: int) -> str:
    """train.loss, with auto resolved: the sampled softmax above train.sampled_above tokens."""
    if conf.loss != "auto":
        return conf.loss
    return "sampled" if vocab > conf.sampled_above else "full"


def training_vocabulary(spark: SparkSession, cfg: Config, day: dt.date) -> Vocabulary:
    """The tracks played at least train.min_plays times in the training part of the window."""
    conf = cfg.train
    valid_from = day - dt.timedelta(days=conf.validation_days - 1)
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days).where(
        F.col("play_date") < F.lit(valid_from))
    kept = (plays.groupBy("track_idx").count().where(F.col("count") >= conf.min_plays).select("track_idx")
            .toPandas()["track_idx"].to_numpy())
    return Vocabulary(kept)


def sequences(plays: DataFrame, day: dt.date, conf: TrainConf) -> DataFrame:
    """Next-track examples (user_idx, session_id, play_date, x, y, split) from sessions."""
    ordered = F.array_sort(F.collect_list(F.struct("session_position", "track_idx", "play_date")))
    sessions = plays.groupBy("user_idx", "session_id").agg(ordered.alias("s")).where(F.size("s") >= 2)
    w = conf.window

    def example(i):  # i: 0-based position of the target, >= 1
        before = F.slice(F.col("s"), F.greatest(F.lit(1), i + 1 - w), F.least(i, F.lit(w)))
        tracks = F.transform(before, lambda e: e["track_idx"])
        padded = F.concat(F.array_repeat(F.lit(0), F.lit(w) - F.size(tracks)), tracks)
        target = F.element_at(F.col("s"), i + 1)
        return F.struct(padded.alias("x"), target["track_idx"].alias("y"), target["play_date"].alias("play_date"))

    exploded = sessions.select("user_idx", "session_id",
                               F.explode(F.transform(F.sequence(F.lit(1), F.size("s") - 1), example)).alias("e"))
    valid_from = day - dt.timedelta(days=conf.validation_days - 1)
    return exploded.select(
        "user_idx", "session_id", F.col("e.play_date").alias("play_date"), F.col("e.x").alias("x"),
        F.col("e.y").alias("y"),
        F.when(F.col("e.play_date") >= F.lit(valid_from), "valid").otherwise("train").alias("split"))


def write_sequences(spark: SparkSession, cfg: Config, day: dt.date) -> dict:
    conf = cfg.train
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
    examples = sequences(plays, day, conf).withColumn("run_date", F.lit(day))
    delta_io.replace_date(examples.repartition(conf.sequence_files), cfg, GOLD_SEQUENCES, "run_date", day)
    stored = delta_io.read(spark, cfg, GOLD_SEQUENCES).where(F.col("run_date") == F.lit(day))
    counts = {r["split"]: r["count"] for r in stored.groupBy("split").count().collect()}
    if not counts.get("train") or not counts.get("valid"):
        raise NotEnoughHistory(f"train {day}: need examples before and within the last {conf.validation_days} "
                               f"day(s) (train.validation_days); got {counts or 'none'}")
    return counts


def training_input_key(spark: SparkSession, cfg: Config, day: dt.date, lstm: LstmParams, steps: int, loss: str,
                       engine: str) -> str:
    """A digest of D's examples (count and an order-free sum of row hashes) and the run's settings."""
    stored = delta_io.read(spark, cfg, GOLD_SEQUENCES).where(F.col("run_date") == F.lit(day))
    content = stored.agg(F.count("*").alias("n"),
                         F.sum(F.xxhash64("split", "user_idx", "session_id", "play_date", "x", "y").cast("decimal(38,0)"))
                         .alias("h")).first()
    conf = cfg.train
    settings = (content["n"], str(content["h"]), lstm, steps, conf.epochs, conf.batch_size, conf.learning_rate,
                loss, conf.num_sampled, conf.seed, conf.world_size, conf.init_from_embeddings, conf.min_plays)
    if engine == LOCAL:  # the driver's run has its own checkpoints (one process, other batches)
        settings += (LOCAL,)
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def split_files(spark: SparkSession, cfg: Config, day: dt.date, split: str) -> list[str]:
    """The Parquet files holding `split` of D's examples in the table's current snapshot."""
    table = delta_io.read(spark, cfg, GOLD_SEQUENCES)
    return sorted(table.where((F.col("run_date") == F.lit(day)) & (F.col("split") == split)).inputFiles())


def pretrained(spark: SparkSession, cfg: Config, day: dt.date) -> dict[int, list[float]]:
    """D's Word2Vec vectors of the LSTM's embedding size, to start its track embedding from."""
    conf = cfg.train
    if not conf.init_from_embeddings or not delta_io.exists(spark, cfg, GOLD_TRACK_EMBEDDINGS):
        return {}
    rows = (delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(day))
            .where(F.size("vector") == conf.embed_dim).select("track_idx", "vector").collect())
    return {int(r[0]): list(r[1]) for r in rows}


def load_final(spec: TrainSpec) -> NextTrackLSTM:
    found = latest_checkpoint(spec.checkpoint_dir)
    if found is None or found[0] != spec.epochs:
        raise RuntimeError(f"training finished without the checkpoint of epoch {spec.epochs} in {spec.checkpoint_dir}")
    model = NextTrackLSTM(spec.lstm)
    model.load_state_dict(load_checkpoint(found[1])["model"])
    return model.eval()


def evaluate_next_track(spark: SparkSession, cfg: Config, day: dt.date, model: NextTrackLSTM,
                        vocabulary: Vocabulary) -> dict:
    k, conf = cfg.evaluate.k, cfg.train
    table = delta_io.read(spark, cfg, GOLD_SEQUENCES).where(F.col("run_date") == F.lit(day))
    with CacheScope() as cache:
        valid = cache(table.where(F.col("split") == "valid").orderBy("session_id", "play_date", "y", "x")
                      .limit(conf.eval_examples).withColumn("example", F.monotonically_increasing_id()))
        truth = valid.select("example", F.array("y").alias("truth"))
        valid_from = day - dt.timedelta(days=conf.validation_days - 1)
        train_plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days).where(
            F.col("play_date") < F.lit(valid_from))
        lstm = ranked_lists(next_track_scores(spark, saved_model(model, conf.window, vocabulary),
                                              valid.select("example", "x"), "example", k), k, key="example")
        lists = {"lstm": lstm} | next_track_baselines(spark, cfg, valid, train_plays, day, k)
        results = score_named(lists, truth, k, key="example")  # every list in one pass
    write_metrics(spark, cfg, day, "train", k,
                  {name: {m: v for m, v in values.items() if m in ("hit_rate", "ndcg", "recall", "map", "users")}
                   for name, values in results.items()}, prefix=NEXT_TRACK)
    return results


def next_track_baselines(spark: SparkSession, cfg: Config, valid: DataFrame, train_plays: DataFrame,
                         day: dt.date, k: int) -> dict[str, DataFrame]:
    """(example, recs) per baseline: popularity, the user's most played, item2vec of the last track."""
    users = valid.select("user_idx").distinct()
    popular = ranked_lists(sources.popular(train_plays, users, k), k)
    most = ranked_lists(sources.most_played(train_plays, users, k), k)
    engine = choose_engine(cfg.embed.engine, train_plays.count(), cfg.embed.spark_above)
    embeddings = train_word2vec(spark, train_plays, engine, Word2VecParams.of(cfg.embed),
                                location(cfg, "scratch", "train", day.isoformat()))
    neighbours = sources.neighbour_table(spark, embeddings, k)
    last = valid.select("example", F.element_at("x", -1).alias("track_idx"))
    scored = last.join(neighbours, "track_idx").select("example", F.col("neighbour_idx").alias("track_idx"),
                                                       F.col("similarity").alias("score"))
    return {
        "popularity": valid.join(popular, "user_idx").select("example", "recs"),
        "most_played": valid.join(most, "user_idx").select("example", "recs"),
        "item2vec": ranked_lists(scored, k, key="example"),
    }
