"""train: the LSTM's data feed, sequences, distributed training under both backends (2 ranks, CPU,
Gloo), the train job end to end, and scoring on the executors."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from conftest import NIGHTS, command_lines
from jobs import train
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import GOLD_METRICS, GOLD_MODELS, GOLD_SEQUENCES
from jobs.train import sequences, split_files
from models import feed
from models.distributed import TrainSpec, latest_checkpoint, run_backend
from models.lstm import LstmParams

DAY = dt.date(2026, 1, 5)
VOCAB = 40
WINDOW = 4


def test_sequences_are_left_padded_windows_of_the_session_split_by_date(spark, base_cfg):
    conf = with_overrides(base_cfg, ["train.window=3", "train.validation_days=1"]).train
    plays = spark.createDataFrame([
        (1, 100, 1, 7, dt.date(2026, 1, 4)), (1, 100, 2, 8, dt.date(2026, 1, 4)), (1, 100, 3, 9, dt.date(2026, 1, 4)),
        (1, 100, 4, 10, dt.date(2026, 1, 4)), (1, 100, 5, 11, dt.date(2026, 1, 5)),
        (2, 200, 1, 5, dt.date(2026, 1, 5)),  # a one-play session has no example
    ], "user_idx int, session_id long, session_position int, track_idx int, play_date date")
    got = sorted((r.y, r.x, r.split) for r in sequences(plays, DAY, conf).collect())
    assert got == [(8, [0, 0, 7], "train"), (9, [0, 7, 8], "train"), (10, [7, 8, 9], "train"),
                   (11, [8, 9, 10], "valid")]


def test_deal_gives_disjoint_complete_balanced_shards():
    files = [(f"f{i}", rows) for i, rows in enumerate([50, 40, 30, 20, 10, 10, 5])]
    shards = feed.deal(files, 3)
    flat = [f for shard in shards for f in shard]
    assert sorted(flat) == sorted(f for f, _ in files) and len(flat) == len(set(flat))
    loads = [sum(dict(files)[f] for f in shard) for shard in shards]
    assert max(loads) - min(loads) <= 10


@pytest.fixture(scope="module")
def planted(spark, base_cfg, tmp_path_factory):
    """A sequences table whose next track is always the last one plus one: learnable structure."""
    root = tmp_path_factory.mktemp("train")
    cfg = with_overrides(base_cfg, [f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}"])
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3000):
        start = int(rng.integers(1, VOCAB - WINDOW - 1))
        x = list(range(start, start + WINDOW))
        rows.append((DAY, "train", i % 50, i, DAY, x, start + WINDOW))
    frame = spark.createDataFrame(rows, GOLD_SEQUENCES.schema).repartition(6)
    delta_io.replace_date(frame, cfg, GOLD_SEQUENCES, "run_date", DAY)
    files = split_files(spark, cfg, DAY, "train")
    return cfg, files, root


def spec_for(files, root, name, epochs, world=2):
    shard_plan = feed.plan(files, world, batch_size=64)
    return TrainSpec(lstm=LstmParams(VOCAB, 16, 32, 1, 0.0), shards=shard_plan.shards,
                     steps_per_epoch=shard_plan.steps_per_epoch, epochs=epochs, batch_size=64,
                     learning_rate=0.01, loss="full", num_sampled=10, checkpoint_dir=str(root / name / "ckpt"), seed=3)


def test_feed_shards_cover_the_snapshot_without_overlap(spark, planted):
    cfg, files, _ = planted
    shard_plan = feed.plan(files, 2, 64)
    assert sorted(f for s in shard_plan.shards for f in s) == files and len(files) >= 2
    assert not set(shard_plan.shards[0]) & set(shard_plan.shards[1])
    assert sum(shard_plan.rows) == delta_io.read(spark, cfg, GOLD_SEQUENCES).count() == 3000
    read = [feed.read_shard(s) for s in shard_plan.shards]
    assert sum(len(y) for _, y in read) == 3000
    assert all(x.shape[1] == WINDOW and (y == x[:, -1] + 1).all() for x, y in read)


@pytest.mark.parametrize("backend", ["horovod", "torch-distributor"])
def test_two_ranks_learn_and_end_with_identical_parameters(spark, planted, backend):
    _, files, root = planted
    results = run_backend(spark, spec_for(files, root, backend, epochs=3), backend, 2, timeout_s=240)
    rank0 = next(r for r in results if r["rank"] == 0)
    assert rank0["world_size"] == 2 and rank0["backend"] == backend and rank0["device"] == "cpu"
    losses = rank0["loss_by_epoch"]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.7
    assert len(rank0["digests"]) == 2 and len(set(rank0["digests"])) == 1
    if backend == "horovod":  # horovod.spark.run returns every rank's result
        assert sorted(r["rank"] for r in results) == [0, 1]
        assert {r["digests"][r["rank"]] for r in results} == set(rank0["digests"])


@pytest.mark.parametrize("backend", ["horovod", "torch-distributor"])
def test_a_stopped_run_resumes_after_its_last_checkpoint(spark, planted, backend):
    _, files, root = planted
    name = f"resume-{backend}"
    first = run_backend(spark, spec_for(files, root, name, epochs=1), backend, 2, timeout_s=240)
    first = next(r for r in first if r["rank"] == 0)
    assert latest_checkpoint(str(root / name / "ckpt"))[0] == 1
    # a fresh run starts at epoch 0; only a retried attempt (train.timeout_minutes' watchdog) may
    # resume from what the stalled first attempt checkpointed
    assert first["resumed_from"] == 0 or (first["attempt"] == 2 and first["resumed_from"] == 1)
    # Rank 0 alone reads the checkpoint folder and sends what it found to the others. Under Horovod
    # that send was named after the object's type ("tuple" on rank 0, "NoneType" elsewhere), so the
    # ranks waited on two different collectives until the watchdog gave up: one attempt, bounded.
    second = run_backend(spark, spec_for(files, root, name, epochs=3), backend, 2, timeout_s=180, attempts=1)
    assert {r["rank"]: r["resumed_from"] for r in second} == ({0: 1, 1: 1} if backend == "horovod" else {0: 1})
    second = next(r for r in second if r["rank"] == 0)
    assert second["loss_by_epoch"][0] == first["loss_by_epoch"][0] and len(second["loss_by_epoch"]) == 3
    assert len(set(second["digests"])) == 1
    assert latest_checkpoint(str(root / name / "ckpt"))[0] == 3


def test_sampled_softmax_learns_in_a_single_process(planted):
    import dataclasses

    from models.distributed import train as train_ranks
    _, files, root = planted
    spec = dataclasses.replace(spec_for(files, root, "sampled", epochs=3, world=1), loss="sampled", num_sampled=8)
    result = train_ranks(spec, "local")
    assert result["world_size"] == 1 and result["backend"] == "local"
    assert result["loss_by_epoch"][-1] < result["loss_by_epoch"][0] * 0.7


def test_train_lstm_with_horovod_end_to_end(spark, modelled):
    cfg = with_overrides(modelled, ["train.embed_dim=16", "train.hidden=32", "train.epochs=2", "train.batch_size=128",
                                     "train.window=5", "train.sequence_files=4", "train.eval_examples=2000",
                                     "train.timeout_minutes=4"])
    from jobs.core.records import write_metrics  # an evaluate row of the same date, which train must keep
    write_metrics(spark, cfg, NIGHTS[-1], "evaluate", 10, {"most_played": {"ndcg": 0.5, "users": 3}})
    result = train.run(spark, cfg, NIGHTS[-1], "horovod")
    row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'lstm'").collect()
    assert len(row) == 1 and row[0]["backend"] == "horovod" and row[0]["world_size"] == 2
    metrics = json.loads(row[0]["metrics"])
    assert metrics["export"]["torchscript_top_k_equal"] is True and metrics["export"]["onnx_top_k_equal"] is True
    assert metrics["loss_by_epoch"][-1] < metrics["loss_by_epoch"][0]
    from pathlib import Path
    store = Path(row[0]["path"])
    assert {"model.pt", "model.torchscript.pt", "model.onnx"} <= {p.name for p in store.iterdir()}
    next_track = delta_io.read(spark, cfg, GOLD_METRICS).where((F.col("run_date") == F.lit(NIGHTS[-1]))
                                                               & F.col("model").startswith("next_track:"))
    assert next_track.select("model").distinct().count() == 4
    assert result["metrics"]["lstm"]["hit_rate"] > result["metrics"]["popularity"]["hit_rate"]
    # evaluate's rows of the same date were kept beside train's
    assert delta_io.read(spark, cfg, GOLD_METRICS).where(~F.col("model").startswith("next_track:")).count() > 0


def rank_processes() -> list[str]:
    """Command lines of running Horovod rank processes (gloo_exec_fn, under any Spark task)."""
    return [text for text in command_lines().values()
            if "horovod.spark.task.gloo_exec_fn" in text and not text.startswith("/bin/sh")]


def test_a_training_killed_mid_run_reruns_from_its_last_checkpoint_under_horovod(spark, modelled, tmp_path):
    """The production backend, real processes: the train job is SIGKILLed after its second
    checkpoint; no rank outlives it; the rerun resumes there and publishes the model of all epochs."""
    from test_operations import conf_file, finish, job
    # Without the checkpoints other tests left for this date: the only ones are this run's.
    shutil.copytree(modelled.warehouse, tmp_path / "wh", ignore=shutil.ignore_patterns("_lease", "_checkpoints"))
    epochs = 60
    cfg = with_overrides(modelled, [f"warehouse={tmp_path / 'wh'}", "train.backend=horovod", f"train.epochs={epochs}",
                                    "train.driver_below_examples=0",
                                    "train.embed_dim=16", "train.hidden=32", "train.batch_size=128", "train.window=5",
                                    "train.sequence_files=4", "train.eval_examples=500", "train.timeout_minutes=1.5",
                                    "log_level=INFO", "spark.event_log=false"])
    conf = conf_file(cfg, tmp_path / "c.yaml")
    day = str(NIGHTS[-1])
    proc = job(conf, "train", "--date", day)
    folder = tmp_path / "wh" / "_checkpoints" / "lstm" / day
    deadline = time.monotonic() + 240
    while not list(folder.glob("*/epoch-0002.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "train ended before its second checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while rank_processes():  # the JVM and its Python workers go with the driver, and the ranks with them
        assert time.monotonic() < deadline, f"ranks outlived the killed job: {rank_processes()}"
        time.sleep(0.5)
    runs = list(folder.iterdir())
    assert len(runs) == 1, runs
    killed_at = latest_checkpoint(str(runs[0]))[0]
    assert 2 <= killed_at < epochs
    code, err = finish(job(conf, "train", "--date", day), timeout=600)
    assert code == 0, err[-3000:]
    resumed = re.search(r"resumed after epoch (\d+)", err)
    assert resumed and int(resumed.group(1)) == killed_at  # no epoch trained twice, none lost
    row = delta_io.read(spark, cfg, GOLD_MODELS).where(F.col("model") == "lstm").where(
        F.col("run_date") == F.lit(NIGHTS[-1])).collect()
    assert len(row) == 1 and row[0]["backend"] == "horovod"
    assert len(json.loads(row[0]["metrics"])["loss_by_epoch"]) == epochs


def test_lstm_scores_on_executors_match_the_model_through_its_vocabulary(spark):
    import torch

    from models.lstm import LstmParams, NextTrackLSTM, Vocabulary
    from models.serving import next_track_scores, saved_model
    torch.manual_seed(0)
    vocabulary = Vocabulary([3, 4, 5, 7, 8, 9, 12, 20, 31, 40])  # tokens 1..10, 11 shared, 0 padding
    net = NextTrackLSTM(LstmParams(vocab=vocabulary.size, embed_dim=8, hidden=8, layers=1, dropout=0.0)).eval()
    windows = spark.createDataFrame([(1, [0, 3, 4, 5]), (2, [7, 8, 9, 99])], "user_idx int, x array<int>")
    scored = next_track_scores(spark, saved_model(net, 4, vocabulary), windows, "user_idx", 5).collect()
    by_user = {u: sorted(((r["score"], r["track_idx"]) for r in scored if r["user_idx"] == u), reverse=True)
               for u in (1, 2)}
    # track 99 is not in the vocabulary: read as the shared token, as the model saw rare tracks in training
    tokens = torch.tensor([[0, 1, 2, 3], [4, 5, 6, vocabulary.shared]])
    assert vocabulary.tokens(np.array([[0, 3, 4, 5], [7, 8, 9, 99]])).tolist() == tokens.tolist()
    with torch.no_grad():
        probabilities = torch.softmax(net(tokens), dim=1)
    probabilities[:, 0] = -1.0  # padding and the shared token are never a next track
    probabilities[:, vocabulary.shared] = -1.0
    for row, u in enumerate((1, 2)):
        values, best = torch.topk(probabilities[row], 5)
        assert [t for _, t in by_user[u]] == vocabulary.track_of(best.numpy()).tolist()
        assert [s for s, _ in by_user[u]] == pytest.approx(values.tolist(), rel=1e-5)
        assert all(t in vocabulary.tracks for _, t in by_user[u])


SCORING_CHILD = """
import resource, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from models.lstm import LstmParams, NextTrackLSTM, Vocabulary
from models.serving import top_tracks
torch.manual_seed(0)
vocabulary = Vocabulary(np.arange(1, 60_001))
net = NextTrackLSTM(LstmParams(vocab=vocabulary.size, embed_dim=8, hidden=8, layers=1, dropout=0.0)).eval()
windows = np.random.default_rng(0).integers(1, 70_000, size=(10_000, 5))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracks, values = top_tracks(net, vocabulary, windows, 20)
probabilities = torch.softmax(net(torch.as_tensor(vocabulary.tokens(windows[:3]))), dim=1)
probabilities[:, 0] = probabilities[:, vocabulary.shared] = -1.0
best = vocabulary.track_of(torch.topk(probabilities, 20, dim=1).indices.numpy())
print(tracks.shape[0], tracks.shape[1], int((tracks[:3] == best).all()),
      (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_lstm_scoring_of_a_large_vocabulary_stays_within_bounded_memory():
    """What an executor's Python worker does for recommend's LSTM source: one Arrow batch of 10,000
    users' windows over a 60,000-track vocabulary, scored in a child process whose peak memory is
    measured. Scored whole, the logits and probabilities alone would take 4.8 GB."""
    import subprocess
    import sys

    from conftest import ROOT
    out = subprocess.run([sys.executable, "-c", SCORING_CHILD, str(ROOT)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows, width, same, grown_mib = map(int, out.stdout.split())
    assert (rows, width, same) == (10_000, 20, 1)  # every window scored, the same top tracks as scored alone
    assert grown_mib < 1024, f"scoring grew the worker by {grown_mib} MiB"


def test_a_long_tail_catalogue_gets_a_capped_vocabulary_and_the_sampled_softmax(spark, base_cfg, tmp_path):
    """150,000 tracks of which 1,000 are played more than once: the vocabulary keeps those 1,000 (the
    rest share one token), examples whose target is rare are dropped, and `loss: auto` samples the
    softmax above train.sampled_above tokens; one training step runs on the capped model."""
    import torch

    from jobs.core.tables import SILVER_PLAYS
    from models.lstm import NextTrackLSTM, NextTrackObjective
    cfg = with_overrides(base_cfg, [f"warehouse={tmp_path / 'wh'}", "train.validation_days=1", "train.min_plays=2"])
    day = dt.date(2026, 1, 10)
    head = spark.range(1, 1001).select(F.col("id").cast("int").alias("track_idx")).crossJoin(spark.range(3))
    tail = spark.range(1001, 150001).select(F.col("id").cast("int").alias("track_idx"), F.lit(0).alias("id"))
    plays = (head.unionByName(tail).withColumn("user_idx", (F.col("track_idx") % 50 + 1).cast("int"))
             .withColumn("play_date", F.lit(day - dt.timedelta(days=2)))
             .withColumn("ts", F.col("play_date").cast("timestamp"))
             .select(F.concat(F.lit("u"), "user_idx").alias("user_id"), "user_idx",
                     F.concat(F.lit("t"), "track_idx").alias("track_id"), "track_idx", "ts", "play_date",
                     F.lit(1).alias("session_position"), F.lit(day).alias("ingest_date")))
    for column in SILVER_PLAYS.columns:
        if column not in plays.columns:
            plays = plays.withColumn(column, F.lit(None))
    delta_io.replace_date(plays, cfg, SILVER_PLAYS, "ingest_date", day)
    vocabulary = train.training_vocabulary(spark, cfg, day)
    assert len(vocabulary.tracks) == 1000 and vocabulary.size == 1002 and vocabulary.shared == 1001
    assert train.resolved_loss(cfg.train, vocabulary.size) == "full"  # below the default 20,000
    small = with_overrides(cfg, ["train.sampled_above=500"]).train
    assert train.resolved_loss(small, vocabulary.size) == "sampled"
    assert train.resolved_loss(with_overrides(cfg, ["train.loss=full", "train.sampled_above=500"]).train,
                               vocabulary.size) == "full"
    windows = np.array([[0, 5, 6, 149000], [7, 8, 120000, 9], [1, 2, 3, 4]])
    x, y = feed.to_tokens(windows, np.array([10, 140000, 999]), vocabulary)
    assert x.tolist() == [[0, 5, 6, 1001], [1, 2, 3, 4]] and y.tolist() == [10, 999]  # the rare target is dropped
    model = NextTrackLSTM(LstmParams(vocabulary.size, 8, 8, 1, 0.0))
    assert model.out.weight.shape[0] == 1002  # not 150,001 rows
    loss = NextTrackObjective(model, "sampled", 50)(torch.as_tensor(x), torch.as_tensor(y))
    loss.backward()
    assert torch.isfinite(loss) and model.out.weight.grad is not None


def test_an_export_may_order_exactly_tied_tracks_its_own_way_but_not_change_scores_or_picks(tmp_path):
    # lfm1b-dev, 2026-12-06: two tracks scored exactly alike in torch and ONNX Runtime ranked them
    # the other way round (its scores differ from torch's by up to about 5e-6), and the export check,
    # which compared the top-k indices exactly, failed the night's train stage
    import torch

    from models.export import export, top_k_agrees, without_padding
    from models.lstm import NextTrackLSTM, Vocabulary
    torch.manual_seed(3)
    model = NextTrackLSTM(LstmParams(vocab=40, embed_dim=8, hidden=16, layers=1, dropout=0.0)).eval()
    with torch.no_grad():  # tokens 7 and 9 score exactly alike, and above every other track
        model.out.weight[9] = model.out.weight[7]
        model.out.bias[7] += 20.0
        model.out.bias[9] = model.out.bias[7]
    windows = torch.randint(1, 38, (64, 5))
    with torch.no_grad():
        reference = without_padding(model(windows))
    assert torch.equal(reference[:, 7], reference[:, 9])
    first = torch.topk(reference, 3, dim=1).indices[:, 0]
    other = torch.where(first == 7, 9, 7)
    swapped = reference.clone()  # the tie broken the other way, as another runtime's last bits may
    swapped[torch.arange(64), other] += 1e-6
    assert not torch.equal(torch.topk(swapped, 3, dim=1).indices, torch.topk(reference, 3, dim=1).indices)
    assert top_k_agrees(reference, swapped, 3)

    third = torch.topk(reference, 4, dim=1).indices[:, 3]  # a track below the top 3 promoted into it
    promoted = reference.clone()
    promoted[torch.arange(64), third] = reference[torch.arange(64), 7] + 1e-3
    assert not top_k_agrees(reference, promoted, 3)
    off = reference.clone()  # the same picks, but a score the export got wrong
    off[:, 20] += 0.01
    assert torch.equal(torch.topk(off, 3, dim=1).indices, torch.topk(reference, 3, dim=1).indices)
    assert not top_k_agrees(reference, off, 3)

    checks = export(model, str(tmp_path / "model"), 5, Vocabulary.identity(40), windows.numpy(), 3, onnx=True)
    assert checks["torchscript_top_k_equal"] is True and checks["onnx_top_k_equal"] is True
    assert 0 <= checks["onnx_max_abs_diff"] < 1e-4


def test_a_crafted_model_file_cannot_run_code_when_loaded(tmp_path):
    import pickle

    from models import serving
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "model").mkdir()
    with open(tmp_path / "model" / serving.MODEL_FILE, "wb") as out:
        pickle.dump({"params": Payload(), "state": {}, "window": 5}, out)
    with pytest.raises(pickle.UnpicklingError):
        serving.load(str(tmp_path / "model"))
    assert not marker.exists()


def test_a_small_night_trains_in_the_driver_and_a_named_backend_launches_its_ranks(base_cfg):
    conf = with_overrides(base_cfg, ["train.driver_below_examples=1000", "train.backend=horovod"]).train
    assert train.training_engine(conf, 999) == "local"
    assert train.training_engine(conf, 1000) == "horovod"
    assert train.training_engine(conf, 10, "torch-distributor") == "torch-distributor"  # `--backend` on the command line
    never = with_overrides(base_cfg, ["train.driver_below_examples=0", "train.backend=horovod"]).train
    assert train.training_engine(never, 1) == "horovod"


def test_train_reruns_on_changed_input_start_fresh_and_publish_a_new_model(spark, base_cfg, tmp_path, monkeypatch):
    from conftest import small_generate
    from jobs import clean, generate, ingest
    from jobs.core.rawfiles import raw_dir
    from jobs.core.tables import SILVER_TRACKS
    day = NIGHTS[1]
    cfg = with_overrides(base_cfg, [
        f"warehouse={tmp_path / 'wh'}", f"raw_path={tmp_path / 'raw'}",
        *small_generate(days=2, users=20, events=1200, dirty=0.0, tracks=150, artists=20),
        "embed.vector_size=8", "train.embed_dim=8", "train.hidden=8", "train.epochs=1", "train.window=4",
        "train.sequence_files=2", "train.eval_examples=200", "train.backend=torch-distributor",
        "train.export_onnx=false", "train.timeout_minutes=4"])
    generate.run(spark, cfg)
    for d in NIGHTS[:2]:
        ingest.run(spark, cfg, d)
        clean.run(spark, cfg, d)
    first = train.run(spark, cfg, day)  # a small night: trained in the driver, as world_size ranks would
    assert first["ranks"][0]["resumed_from"] == 0
    assert (first["ranks"][0]["backend"], first["ranks"][0]["world_size"]) == ("local", 1)
    assert first["ranks"][0]["spec"]["batch_size"] == 2 * cfg.train.batch_size
    path_of = {}
    path_of[1] = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'lstm'").first()["path"]
    # new plays of new tracks arrive for the same date: the vocabulary grows, the examples change
    extra = [f"user_{u:06d}\t2026-01-02T2{h}:{m:02d}:00Z\t\tNew Artist\t\tNew Track {u}-{m % 3}"
             for u in range(3) for h in range(2) for m in range(0, 60, 5)]
    folder = Path(raw_dir(cfg, "lastfm-tsv", day))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "late.tsv").write_text("\n".join(extra) + "\n")
    ingest.run(spark, cfg, day)
    clean.run(spark, cfg, day)
    second = train.run(spark, cfg, day)  # before: "size mismatch" from the stale checkpoint, on every retry
    assert second["ranks"][0]["resumed_from"] == 0
    row = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'lstm'").collect()
    assert len(row) == 1 and row[0]["path"] != path_of[1]
    params = json.loads(row[0]["params"])
    assert params["vocab"] == params["tracks"] + 2 <= delta_io.read(spark, cfg, SILVER_TRACKS).count() + 2
    assert params["loss"] == "full"  # auto: a small vocabulary
    assert Path(path_of[1], "model.pt").exists() and Path(row[0]["path"], "model.pt").exists()
    # the same input again: that run trained every epoch, so its final checkpoint is used and no rank
    # is launched (a launch is seconds of process start and teardown for nothing to train)
    monkeypatch.setattr(train, "run_backend", lambda *args, **kwargs: pytest.fail("ranks launched again"))
    monkeypatch.setattr(train, "train_ranks", lambda *args, **kwargs: pytest.fail("trained again"))
    third = train.run(spark, cfg, day)
    assert third["ranks"][0]["resumed_from"] == 1
    assert third["ranks"][0]["loss_by_epoch"] == second["ranks"][0]["loss_by_epoch"]
    again = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'lstm'").collect()
    assert len(again) == 1 and again[0]["backend"] == "local" and again[0]["world_size"] == 1
