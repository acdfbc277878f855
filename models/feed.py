"""The training data feed: each rank reads its own shard of the training table's Parquet files.

The driver lists the files of the table's current Delta snapshot and their row counts (Parquet
footers), deals the files to ranks so that row counts are as even as possible, and fixes one
number of steps per epoch for all ranks (the smallest shard's), so that collective operations
line up. A rank then reads only its files with pyarrow; no training row passes through the driver.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pyarrow.parquet as pq

from models.storage import filesystem


def row_count(uri: str) -> int:
    fs, path = filesystem(uri)
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def deal(files: list[tuple[str, int]], world: int) -> list[list[str]]:
    """Files (uri, rows) to `world` shards, largest first onto the lightest shard. Disjoint, complete."""
    shards: list[list[str]] = [[] for _ in range(world)]
    load = [0] * world
    for uri, rows in sorted(files, key=lambda f: (-f[1], f[0])):
        lightest = min(range(world), key=lambda r: (load[r], r))
        shards[lightest].append(uri)
        load[lightest] += rows
    return shards


@dataclass(frozen=True)
class ShardPlan:
    shards: list[list[str]]
    rows: list[int]
    steps_per_epoch: int


def plan(files: list[str], world: int, batch_size: int) -> ShardPlan:
    counted = [(f, row_count(f)) for f in files]
    shards = deal(counted, world)
    rows_of = dict(counted)
    rows = [sum(rows_of[f] for f in shard) for shard in shards]
    return ShardPlan(shards, rows, max(1, min(rows) // batch_size))


def read_shard(uris: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(windows int64 [n, w], targets int64 [n]) of a shard's files."""
    xs, ys = [], []
    for uri in uris:
        fs, path = filesystem(uri)
        with fs.open_input_file(path) as f:
            table = pq.read_table(f, columns=["x", "y"])
        if table.num_rows:
            xs.append(np.stack(table.column("x").to_numpy(zero_copy_only=False)).astype(np.int64))
            ys.append(table.column("y").to_numpy().astype(np.int64))
    if not xs:
        return np.zeros((0, 0), np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def to_tokens(windows: np.ndarray, targets: np.ndarray, vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Windows and targets as the vocabulary's tokens (models.lstm.Vocabulary), without the examples
    whose target is outside it: the shared token of rare tracks is context, never a target."""
    if not len(targets):
        return windows, targets
    x, y = vocabulary.tokens(windows), vocabulary.tokens(targets)
    keep = (y != vocabulary.shared) & (y != 0)
    return x[keep], y[keep]


def batches(windows: np.ndarray, targets: np.ndarray, batch_size: int, steps: int, seed: int):
    """`steps` shuffled batches (cycling through the shard if it is short)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(targets))
    pos = 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(targets)), 0
        pick = order[pos:pos + batch_size]
        pos += batch_size
        yield windows[pick], targets[pick]
