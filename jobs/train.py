"""train: the LSTM next-track model, data-parallel on the Spark cluster (Horovod or TorchDistributor).

For run date D:
1. sequences: every play of the last train.history_days days with the train.window tracks of its
   session before it (0-padded) becomes an example in gold.sequences; examples whose play falls in
   the last train.validation_days days validate, the others train. Written as train.sequence_files
   Parquet files so the ranks have files to share.
2. training: the driver lists the train split's files in the current Delta snapshot and deals them
   to train.world_size ranks (models.feed); `horovod.spark.run` (one rank per Spark task) or
   TorchDistributor runs models.distributed.train; rank 0 checkpoints every epoch under
   <warehouse>/models/lstm/<D>/checkpoints and a rerun resumes after the latest checkpoint.
3. export: the final weights as TorchScript (and ONNX where the exporter can), checked to give the
   same top-10 as the trained model on validation examples.
4. evaluation: next-track hit rate and NDCG at evaluate.k on validation examples (full ranking) for
   the LSTM, global popularity, the user's most played tracks and item2vec neighbours of the last
   track, with the same metric definitions as evaluate; a gold.models row and gold.metrics rows.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import candidates, delta_io, embed
from jobs.als import record_model
from jobs.config import Config, TrainConf, join_path
from jobs.evaluate import NEXT_TRACK
from jobs.errors import NotEnoughHistory
from jobs.scoring import ranked_lists, score_lists
from jobs.tables import GOLD_METRICS, GOLD_SEQUENCES, GOLD_TRACK_EMBEDDINGS, SILVER_PLAYS, SILVER_TRACKS
from models import feed
from models.distributed import TrainSpec, latest_checkpoint
from models.distributed import train as train_ranks
from models.lstm import LstmParams, NextTrackLSTM, top_k
from models.serving import next_track_scores

log = logging.getLogger("setlist.train")


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
    plays = embed.history(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days)
    examples = sequences(plays, day, conf).withColumn("run_date", F.lit(day))
    delta_io.replace_date(examples.repartition(conf.sequence_files), cfg, GOLD_SEQUENCES, "run_date", day)
    stored = delta_io.read(spark, cfg, GOLD_SEQUENCES).where(F.col("run_date") == F.lit(day))
    counts = {r["split"]: r["count"] for r in stored.groupBy("split").count().collect()}
    if not counts.get("train") or not counts.get("valid"):
        raise NotEnoughHistory(f"train {day}: need examples before and within the last {conf.validation_days} day(s) "
                         f"(train.validation_days); got {counts or 'none'}")
    return counts


def split_files(spark: SparkSession, cfg: Config, day: dt.date, split: str) -> list[str]:
    """The Parquet files holding `split` of D's examples in the table's current snapshot."""
    table = delta_io.read(spark, cfg, GOLD_SEQUENCES)
    return sorted(table.where((F.col("run_date") == F.lit(day)) & (F.col("split") == split)).inputFiles())


def _pretrained(spark: SparkSession, cfg: Config, day: dt.date) -> dict[int, list[float]]:
    conf = cfg.train
    if not conf.init_from_embeddings or not delta_io.exists(spark, cfg, GOLD_TRACK_EMBEDDINGS):
        return {}
    rows = (delta_io.read(spark, cfg, GOLD_TRACK_EMBEDDINGS).where(F.col("run_date") == F.lit(day))
            .where(F.size("vector") == conf.embed_dim).select("track_idx", "vector").collect())
    return {int(r[0]): list(r[1]) for r in rows}


def run_backend(spark: SparkSession, spec: TrainSpec, backend: str, world: int, timeout_s: float = 4 * 3600,
                attempts: int = 2) -> list[dict]:
    """Every rank's result (with the attempt that produced it): Horovod returns all ranks';
    TorchDistributor rank 0's (which has all digests).

    A distributed start can hang (a rank that never joins the rendezvous leaves the others waiting):
    after timeout_s the run's Spark jobs are cancelled and it is tried again, up to `attempts` times;
    a retry resumes from the last checkpoint.
    """
    import threading
    for attempt in range(1, attempts + 1):
        # The launch stays in this thread (Horovod installs signal handlers); a watchdog cancels the
        # run's Spark jobs if it outlives timeout_s. Horovod starts its job from a thread of its own,
        # out of reach of a job group, and the train stage runs alone: cancel every running job.
        done, fired = threading.Event(), threading.Event()

        def watchdog():
            if not done.wait(timeout_s):
                fired.set()
                log.warning("train: %s attempt %d did not finish in %.0f s; cancelling its Spark jobs", backend,
                            attempt, timeout_s)
                spark.sparkContext.cancelAllJobs()

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            return [r | {"attempt": attempt} for r in _launch(spark, spec, backend, world)]
        except Exception as exc:
            if not fired.is_set():
                raise
            if attempt == attempts:
                raise RuntimeError(f"train: {backend} did not finish in {attempts} attempt(s) of {timeout_s:.0f} s "
                                   f"each (train.timeout_minutes)") from exc
        finally:
            done.set()
    raise AssertionError("unreachable")


def _launch(spark: SparkSession, spec: TrainSpec, backend: str, world: int) -> list[dict]:
    if backend == "horovod":
        import horovod.spark
        return horovod.spark.run(train_ranks, args=(spec, "horovod"), num_proc=world, verbose=0,
                                 start_timeout=300)
    from pyspark.ml.torch.distributor import TorchDistributor
    use_gpu = spark.conf.get("spark.task.resource.gpu.amount", None) is not None
    return [TorchDistributor(num_processes=world, local_mode=False, use_gpu=use_gpu)
            .run(train_ranks, spec, "torch-distributor")]


def load_final(spec: TrainSpec) -> NextTrackLSTM:
    found = latest_checkpoint(spec.checkpoint_dir)
    if found is None or found[0] != spec.epochs:
        raise RuntimeError(f"training finished without the checkpoint of epoch {spec.epochs} in {spec.checkpoint_dir}")
    model = NextTrackLSTM(spec.lstm)
    model.load_state_dict(torch.load(found[1], map_location="cpu", weights_only=False)["model"])
    return model.eval()


def export(model: NextTrackLSTM, directory: Path, sample: np.ndarray, k: int, onnx: bool) -> dict:
    """TorchScript (and ONNX) files, each checked to give the trained model's top-k on `sample`."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"params": model.params.__dict__, "state": model.state_dict()}, directory / "model.pt")
    x = torch.as_tensor(sample, dtype=torch.long)
    expected = top_k(model, x, k)
    scripted = torch.jit.trace(model, x[:2])
    scripted.save(str(directory / "model.torchscript.pt"))
    reloaded = torch.jit.load(str(directory / "model.torchscript.pt"))
    with torch.no_grad():
        ts_scores = reloaded(x)
        ts_scores[:, 0] = float("-inf")
    checks = {"torchscript_top_k_equal": bool(torch.equal(torch.topk(ts_scores, k, dim=1).indices, expected))}
    if onnx:
        try:
            torch.onnx.export(model, (x[:2],), str(directory / "model.onnx"), input_names=["windows"],
                              output_names=["scores"], dynamic_axes={"windows": {0: "batch"}}, dynamo=False)
        except Exception as exc:  # noqa: BLE001 - an exporter gap is reported, not fatal
            checks["onnx"] = f"not exported: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        else:
            import onnxruntime
            session = onnxruntime.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
            onnx_scores = torch.as_tensor(session.run(["scores"], {"windows": sample.astype(np.int64)})[0])
            onnx_scores[:, 0] = float("-inf")
            checks["onnx_top_k_equal"] = bool(torch.equal(torch.topk(onnx_scores, k, dim=1).indices, expected))
            checks["onnx"] = "exported"
    if not checks["torchscript_top_k_equal"] or checks.get("onnx_top_k_equal") is False:
        raise RuntimeError(f"an export does not give the trained model's top-{k}: {checks}")
    return checks


def lstm_lists(spark: SparkSession, valid: DataFrame, model: NextTrackLSTM, k: int) -> DataFrame:
    """(example, recs): the model's top-k per validation example, scored on the executors."""
    saved = {"params": model.params.__dict__, "state": model.state_dict()}
    scored = next_track_scores(spark, saved, valid.select("example", "x"), "example", k)
    return ranked_lists(scored, k, key="example")


def next_track_baselines(spark: SparkSession, cfg: Config, valid: DataFrame, train_plays: DataFrame,
                         day: dt.date, k: int) -> dict[str, DataFrame]:
    """(example, recs) per baseline: popularity, the user's most played, item2vec of the last track."""
    users = valid.select("user_idx").distinct()
    popular = ranked_lists(candidates.popular(train_plays, users, k), k)
    most = ranked_lists(candidates.most_played(train_plays, users, k), k)
    per_user = {
        "popularity": valid.join(popular, "user_idx").select("example", "recs"),
        "most_played": valid.join(most, "user_idx").select("example", "recs"),
    }
    embeddings = embed.train(spark, train_plays, cfg.embed,
                             join_path(cfg.warehouse, "_scratch", "train", day.isoformat()))
    neighbours = candidates.neighbour_table(spark, embeddings, k)
    last = valid.select("example", F.element_at("x", -1).alias("track_idx"))
    scored = last.join(neighbours, "track_idx").select("example", F.col("neighbour_idx").alias("track_idx"),
                                                       F.col("similarity").alias("score"))
    item2vec = ranked_lists(scored, k, key="example")
    return per_user | {"item2vec": item2vec}


def evaluate_next_track(spark: SparkSession, cfg: Config, day: dt.date, model: NextTrackLSTM) -> dict:
    k, conf = cfg.evaluate.k, cfg.train
    table = delta_io.read(spark, cfg, GOLD_SEQUENCES).where(F.col("run_date") == F.lit(day))
    valid = (table.where(F.col("split") == "valid").orderBy("session_id", "play_date", "y", "x")
             .limit(conf.eval_examples).withColumn("example", F.monotonically_increasing_id())).persist()
    truth = valid.select("example", F.array("y").alias("truth"))
    valid_from = day - dt.timedelta(days=conf.validation_days - 1)
    train_plays = embed.history(delta_io.read(spark, cfg, SILVER_PLAYS), day, conf.history_days).where(
        F.col("play_date") < F.lit(valid_from))
    sources = {"lstm": lstm_lists(spark, valid, model, k)} | next_track_baselines(spark, cfg, valid, train_plays,
                                                                                  day, k)
    results = {name: score_lists(lists, truth, k, key="example") for name, lists in sources.items()}
    valid.unpersist()
    rows = [(day, f"{NEXT_TRACK}{name}", metric, k, float(v), int(values["users"]))
            for name, values in results.items() for metric, v in values.items()
            if metric in ("hit_rate", "ndcg", "recall", "map")]
    frame = spark.createDataFrame(rows, "run_date date, model string, metric string, k int, value double, users long")
    # Only this job's rows of D, in one commit: evaluate writes the other models' rows of the same date.
    delta_io.replace_date(frame, cfg, GOLD_METRICS, "run_date", day, also=f"model LIKE '{NEXT_TRACK}%'")
    return results


def run(spark: SparkSession, cfg: Config, day: dt.date, backend: str | None = None) -> dict:
    conf = cfg.train
    backend = backend or conf.backend
    counts = write_sequences(spark, cfg, day)
    vocab = int(delta_io.read(spark, cfg, SILVER_TRACKS).agg(F.max("track_idx")).first()[0]) + 1
    shard_plan = feed.plan(split_files(spark, cfg, day, "train"), conf.world_size, conf.batch_size)
    store = Path(join_path(cfg.warehouse, "models", "lstm", day.isoformat()))
    spec = TrainSpec(
        lstm=LstmParams(vocab, conf.embed_dim, conf.hidden, conf.layers, conf.dropout),
        shards=shard_plan.shards, steps_per_epoch=shard_plan.steps_per_epoch, epochs=conf.epochs,
        batch_size=conf.batch_size, learning_rate=conf.learning_rate, loss=conf.loss, num_sampled=conf.num_sampled,
        checkpoint_dir=str(store / "checkpoints"), seed=conf.seed, pretrained=_pretrained(spark, cfg, day))
    log.info("train %s: %d train / %d valid examples, vocab %d, %s with %d ranks, %d steps per epoch, "
             "rows per rank %s", day, counts["train"], counts["valid"], vocab, backend, conf.world_size,
             shard_plan.steps_per_epoch, shard_plan.rows)
    results = run_backend(spark, spec, backend, conf.world_size, timeout_s=conf.timeout_minutes * 60.0)
    rank0 = next(r for r in results if r["rank"] == 0)
    log.info("train %s: loss by epoch %s (resumed after epoch %d), device %s", day,
             [round(x, 4) for x in rank0["loss_history"]], rank0["resumed_from"], rank0["device"])
    model = load_final(spec)
    sample = np.stack(delta_io.read(spark, cfg, GOLD_SEQUENCES).where(
        (F.col("run_date") == F.lit(day)) & (F.col("split") == "valid")).select("x").limit(256).toPandas()["x"])
    checks = export(model, store, sample, cfg.evaluate.k, conf.export_onnx)
    metrics = evaluate_next_track(spark, cfg, day, model)
    k = cfg.evaluate.k
    summary = {f"{name}_{m}@{k}": round(v[m], 4) for name, v in metrics.items() for m in ("hit_rate", "ndcg")}
    params = {key: getattr(conf, key) for key in ("window", "embed_dim", "hidden", "layers", "dropout", "loss",
                                                  "num_sampled", "epochs", "batch_size", "learning_rate")}
    record_model(spark, cfg, {
        "run_date": day, "model": "lstm", "version": f"lstm-{day.isoformat()}", "backend": rank0["backend"],
        "world_size": rank0["world_size"], "params": json.dumps(params | {"vocab": vocab}),
        "metrics": json.dumps(summary | {"loss_history": rank0["loss_history"], "export": checks}),
        "path": str(store), "created_at": dt.datetime.now(dt.timezone.utc)})
    log.info("train %s: next-track %s", day, summary)
    return {"ranks": results, "metrics": metrics, "export": checks, "summary": summary}
