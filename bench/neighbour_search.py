"""The neighbour search's top-n selection (models.embeddings.top_neighbours, which item2vec's
neighbours and ALS's top 100 use) against the same function at an earlier commit, on the same
queries, one thread: seconds, whether the scores are identical, and how many rows list other
indices (and whether only at exactly equal scores).

    .venv/bin/python bench/neighbour_search.py [--base COMMIT] [--embeddings DELTA_TABLE_PATH]
                                               [--queries 4000] [--n 50]

Without --embeddings: 6,000 random 32-dimensional queries against 60,000 rows. With it: a sample
of --queries tracks of a gold.track_embeddings table (every run date in it) against all its tracks.
Run it with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for one thread, as one Spark task has.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def module_at(commit: str):
    """models/embeddings.py as it was at `commit`, imported under its own name."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:models/embeddings.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "embeddings_at_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("embeddings_at_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["embeddings_at_base"] = module
    spec.loader.exec_module(module)
    return module


def compare(name: str, base, queries: np.ndarray, matrix: np.ndarray, n: int, selves: np.ndarray) -> None:
    from models import embeddings
    clock = time.perf_counter()
    old_idx, old_sims = base.top_neighbours(queries, matrix, n, exclude_self=selves)
    old_s = time.perf_counter() - clock
    clock = time.perf_counter()
    new_idx, new_sims = embeddings.top_neighbours(queries, matrix, n, exclude_self=selves)
    new_s = time.perf_counter() - clock
    other = [i for i in range(len(old_idx)) if not np.array_equal(old_idx[i], new_idx[i])]
    ties = all(np.array_equal(old_sims[i], new_sims[i]) for i in other)
    print(f"{name}: {len(queries):,} queries x {len(matrix):,} rows, n {n}: base {old_s:.2f} s, now {new_s:.2f} s "
          f"(x{new_s / old_s:.2f}); scores identical: {np.array_equal(old_sims, new_sims)}; rows with other "
          f"indices: {len(other)} (only at equal scores: {ties})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="cf273b2", help="the commit to compare with (default: before best_n)")
    ap.add_argument("--embeddings", help="a gold.track_embeddings Delta table's folder")
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    base = module_at(args.base)
    rng = np.random.default_rng(1)
    if args.embeddings:
        import pyarrow.dataset as ds
        table = ds.dataset(args.embeddings, format="parquet").to_table(columns=["vector"]).to_pandas()
        matrix = np.stack(table["vector"].to_numpy()).astype(np.float32)
        name = f"embeddings of {args.embeddings}"
    else:
        matrix = rng.normal(size=(60_000, 32)).astype(np.float32)
        args.queries, name = 6_000, "random"
    at = rng.choice(len(matrix), min(args.queries, len(matrix)), replace=False)
    compare(name, base, matrix[at], matrix, args.n, at)


if __name__ == "__main__":
    main()
