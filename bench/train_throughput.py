"""LSTM training throughput: Horovod with 2 ranks against one process, same data, same total threads.

    .venv/bin/python bench/train_throughput.py [--examples 40000] [--epochs 3]

Writes a planted next-track table (Delta, several Parquet files), then trains the same model on it
(1) in one process with torch using every core, (2) with horovod.spark.run, 2 ranks of
cores/2 threads each, and (3) with TorchDistributor, 2 ranks. Samples per second are measured
inside the training loop (epochs after the first, so start-up and warm-up are left out) and
reported as ratios to the single process; wall time including Spark/Horovod start-up is printed too.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import time

from _common import planted_sequences, session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=40000)
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workdir", default="/tmp/setlist-bench-train")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    spark, cfg = session([f"warehouse={args.workdir}/warehouse", f"raw_path={args.workdir}/raw",
                          "log_level=WARNING", "spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions=4"])
    from models import feed
    from models.distributed import TrainSpec, run_backend
    from models.distributed import train as train_ranks
    from models.lstm import LstmParams

    files = planted_sequences(spark, cfg, dt.date(2026, 1, 1), args.vocab, window=10, examples=args.examples,
                              users=500, partitions=8)

    def spec(world: int, name: str) -> TrainSpec:
        shard_plan = feed.plan(files, world, args.batch_size)
        return TrainSpec(LstmParams(args.vocab, 32, 64, 1, 0.0), shard_plan.shards, shard_plan.steps_per_epoch,
                         args.epochs, args.batch_size, 0.002, "full", 200, f"{args.workdir}/{name}", seed=1)

    def rate(result: dict) -> float:
        steady = result["epoch_seconds"][1:] or result["epoch_seconds"]
        return result["samples_per_epoch"] / (sum(steady) / len(steady))

    cores = os.cpu_count() or 1
    started = time.perf_counter()
    single = train_ranks(spec(1, "single"), "local")
    runs = {"single process": (single, time.perf_counter() - started)}
    for backend in ("horovod", "torch-distributor"):
        started = time.perf_counter()
        results = run_backend(spark, spec(2, backend), backend, 2)
        runs[f"{backend} x2"] = (next(r for r in results if r["rank"] == 0), time.perf_counter() - started)
    base = rate(single)
    print(f"{args.examples} examples, vocab {args.vocab}, batch {args.batch_size}, {args.epochs} epochs, {cores} cores")
    for name, (result, wall) in runs.items():
        print(f"{name:<24} {rate(result):>9.0f} samples/s  x{rate(result) / base:.2f} of single  "
              f"(wall {wall:.1f}s incl. start-up, final loss {result['loss_by_epoch'][-1]:.3f})")
    spark.stop()


if __name__ == "__main__":
    main()
