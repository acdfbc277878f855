"""Do distributed runs end cleanly? One Horovod run, then N short TorchDistributor runs (2 ranks,
CPU, Gloo) in one local session, as the test suite runs them; prints which attempt finished each
run (2 means the first hung and train.timeout_minutes' watchdog retried it).

    .venv/bin/python bench/train_exit.py [--runs 15] [--timeout-s 90] 2>&1 | tee /tmp/train_exit.log
    grep -c "terminate called without an active exception" /tmp/train_exit.log

A rank that dies at exit prints that line (and torchrun reports exitcode -6, SIGABRT).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil

from _common import planted_sequences, session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--timeout-s", type=float, default=90)
    parser.add_argument("--workdir", default="/tmp/setlist-bench-train-exit")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    spark, cfg = session([f"warehouse={args.workdir}/warehouse", f"raw_path={args.workdir}/raw",
                          "spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions=4"])
    from models import feed
    from models.distributed import TrainSpec, run_backend
    from models.lstm import LstmParams

    vocab = 40
    files = planted_sequences(spark, cfg, dt.date(2026, 1, 5), vocab, window=4, examples=3000, users=50, partitions=6)
    plan = feed.plan(files, 2, batch_size=64)

    def spec(name: str) -> TrainSpec:
        return TrainSpec(lstm=LstmParams(vocab, 16, 32, 1, 0.0), shards=plan.shards,
                         steps_per_epoch=plan.steps_per_epoch, epochs=1, batch_size=64, learning_rate=0.01,
                         loss="full", num_sampled=10, checkpoint_dir=f"{args.workdir}/{name}/ckpt", seed=3)

    run_backend(spark, spec("horovod"), "horovod", 2, timeout_s=args.timeout_s)
    attempts = []
    for i in range(args.runs):
        attempts.append(run_backend(spark, spec(f"td{i}"), "torch-distributor", 2, timeout_s=args.timeout_s)[0]["attempt"])
        print(f"torch-distributor run {i + 1}/{args.runs}: finished by attempt {attempts[-1]}", flush=True)
    print(f"{args.runs} runs, {sum(a > 1 for a in attempts)} retried after a hang", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
