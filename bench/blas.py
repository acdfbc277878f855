"""Spark's ALS and k-means with the native BLAS (OpenBLAS through netlib) against Spark's Java BLAS,
on the same data, in the same run.

    .venv/bin/python bench/blas.py [--users 10000] [--tracks 20000] [--pairs 600000] [--points 40000]

Two child processes, one per BLAS: `native` loads libblas.so.3 / liblapack.so.3 (what setup installs),
`java` points netlib at a library that does not exist, so Spark falls back to its Java BLAS. Each
child builds the same synthetic data (a long-tail user x track matrix; unit vectors in clusters),
then times: the ALS fit of the als stage (als.rank, als.max_iter, implicit) plus top-N for every user,
and k-means and bisecting k-means (cosine, cluster.k or else cluster.k_max) as the cluster stage fits them. Prints which
BLAS each child used, seconds per task (best of --repeats) and the ratio java / native.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def child(args) -> dict:
    from _common import session
    java_opts = (("-Ddev.ludovic.netlib.blas.nativeLib=libsetlist-none.so",
                  "-Ddev.ludovic.netlib.lapack.nativeLib=libsetlist-none.so") if args.blas == "java" else ())
    spark, cfg = session(["spark.event_log=false", f"warehouse={args.workdir}/{args.blas}", *args.set], java_opts)
    import numpy as np
    import pandas as pd
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    from models.als import AlsParams, AlsSettings
    from models.clustering import estimator
    jvm = spark.sparkContext._jvm
    used = {"blas": jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName(),
            "lapack": jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getName()}
    rng = np.random.default_rng(0)
    users = rng.integers(0, args.users, args.pairs)
    tracks = np.minimum(rng.zipf(1.3, args.pairs) - 1, args.tracks - 1)  # a long tail of tracks
    pairs = pd.DataFrame({"user_idx": users, "track_idx": tracks}).drop_duplicates()
    pairs["confidence"] = 1.0 + np.log1p(rng.integers(1, 20, len(pairs)))
    frame = spark.createDataFrame(pairs).repartition(spark.sparkContext.defaultParallelism).cache()
    frame.count()
    conf, dim, k = cfg.als, cfg.embed.vector_size, cfg.cluster.k or cfg.cluster.k_max
    centres = rng.normal(size=(k, dim))
    points = centres[rng.integers(0, k, args.points)] + 0.5 * rng.normal(size=(args.points, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    vectors = (spark.createDataFrame(pd.DataFrame({"v": list(points.astype(float))}))
               .select(array_to_vector("v").alias("features")).repartition(spark.sparkContext.defaultParallelism)
               .cache())
    vectors.count()

    def als():
        model = AlsSettings.of(conf).fit(frame, AlsParams(conf.rank, conf.reg_param, conf.alpha, conf.confidence))
        model.recommendForAllUsers(cfg.recommend.candidates_per_source).agg(F.count("*")).first()

    def kmeans(algorithm):
        return lambda: estimator(algorithm, k, cfg.cluster.max_iter, cfg.cluster.seed).fit(vectors)

    tasks = {"als fit + top-N": als, "k-means": kmeans("kmeans"), "bisecting k-means": kmeans("bisecting")}
    seconds = {}
    for name, task in tasks.items():
        best = float("inf")
        for _ in range(args.repeats):
            clock = time.monotonic()
            task()
            best = min(best, time.monotonic() - clock)
        seconds[name] = round(best, 2)
    spark.stop()
    return {"used": used, "seconds": seconds, "pairs": len(pairs), "rank": conf.rank, "max_iter": conf.max_iter,
            "k": k, "dim": dim}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--tracks", type=int, default=20000)
    ap.add_argument("--pairs", type=int, default=600000)
    ap.add_argument("--points", type=int, default=40000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/setlist-blas")
    ap.add_argument("--blas", choices=["native", "java"])
    ap.add_argument("--set", nargs="*", default=[])
    args = ap.parse_args()
    if args.blas:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return
    results = {}
    for blas in ("native", "java"):
        run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--blas", blas], capture_output=True, text=True)
        lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
        if run.returncode or not lines:
            sys.exit(f"bench/blas.py: the {blas} child failed (exit {run.returncode}): {run.stderr[-2000:]}")
        results[blas] = json.loads(lines[-1][7:])
    native, java = results["native"], results["java"]
    print(f"{native['pairs']} user-track pairs, rank {native['rank']}, {native['max_iter']} iterations; "
          f"{args.points} unit vectors of {native['dim']} dims, k={native['k']}")
    print(f"native: {native['used']}; java: {java['used']}")
    print(f"{'task':20} {'native s':>9} {'java s':>9} {'java/native':>12}")
    for task, fast in native["seconds"].items():
        slow = java["seconds"][task]
        print(f"{task:20} {fast:9.2f} {slow:9.2f} {slow / fast:12.2f}")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    (Path(args.workdir) / "blas.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
