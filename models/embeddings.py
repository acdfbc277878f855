"""Track embeddings by Word2Vec over listening sessions (item2vec): each session is a sentence of
track ids in play order. Two engines with one output, (track_idx, vector):

- gensim: skip-gram with negative sampling. Its corpus is re-iterable and streams sessions from a
  source the caller provides (Spark's toLocalIterator over a stored table), one partition at a time,
  once for the vocabulary and once per epoch; no list of all sessions is ever built.
- spark: MLlib's distributed Word2Vec (skip-gram with hierarchical softmax) on the executors.

Neighbours: cosine top-N of a block of query vectors against the whole matrix, for use per task.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

from udfs.rows import rows_frame

# A track's vector as the embedding functions return it (the Spark and gensim paths alike)
VECTORS = StructType([StructField("track_idx", IntegerType()), StructField("vector", ArrayType(FloatType()))])


@dataclass(frozen=True)
class Word2VecParams:
    vector_size: int
    window: int
    min_count: int
    negative: int
    epochs: int
    learning_rate: float
    seed: int
    spark_partitions: int = 0

    @classmethod
    def of(cls, conf) -> "Word2VecParams":
        """From a config section with these attributes (the embed section)."""
        return cls(*(getattr(conf, name) for name in cls.__dataclass_fields__))


class SessionCorpus:
    """A re-iterable corpus: every pass calls `open_sessions()` for a fresh stream of token lists."""

    def __init__(self, open_sessions: Callable[[], Iterable[list[str]]]):
        self._open = open_sessions

    def __iter__(self) -> Iterator[list[str]]:
        yield from self._open()


def train_gensim(corpus: SessionCorpus, p: Word2VecParams) -> tuple[np.ndarray, np.ndarray]:
    """(track_idx array, float32 matrix) from gensim skip-gram with negative sampling."""
    from gensim.models import Word2Vec
    # One worker thread: gensim's result is then a function of the seed and the corpus order.
    model = Word2Vec(sentences=corpus, vector_size=p.vector_size, window=p.window, min_count=p.min_count,
                     sg=1, negative=p.negative, hs=0, epochs=p.epochs, alpha=p.learning_rate, seed=p.seed,
                     workers=1, sample=0)
    keys = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
    return keys, model.wv.vectors.astype(np.float32)


def choose_engine(engine: str, plays: int, spark_above: int) -> str:
    """embed.engine with `auto` resolved by the number of plays: gensim on the driver while it is
    faster, MLlib's distributed Word2Vec beyond (bench/scale.py measures both)."""
    if engine != "auto":
        return engine
    return "spark" if plays > spark_above else "gensim"


def sentences(plays: DataFrame) -> DataFrame:
    """One row per session: tokens, the session's track_idx values as strings in play order."""
    ordered = F.array_sort(F.collect_list(F.struct("session_position", "track_idx")))
    return (plays.groupBy("user_id", "session_id").agg(ordered.alias("_s"))
            .select("session_id", F.transform("_s", lambda x: x["track_idx"].cast("string")).alias("tokens")))


def train_word2vec(spark: SparkSession, plays: DataFrame, engine: str, p: Word2VecParams, scratch: str) -> DataFrame:
    """(track_idx int, vector array<float>) for every track with at least min_count plays, by the
    `engine` ("gensim" or "spark") over the sessions of `plays`. gensim streams the sessions from a
    stored copy at `scratch` (a folder or URI), one partition at a time, once per pass."""
    sessions = sentences(plays)
    if engine == "spark":
        # MLlib trains one task per partition and averages the vectors after every epoch; its default
        # of one partition would train the whole corpus in one task, whatever the cluster.
        partitions = p.spark_partitions or spark.sparkContext.defaultParallelism
        w2v = Word2Vec(vectorSize=p.vector_size, minCount=p.min_count, windowSize=p.window, maxIter=p.epochs,
                       stepSize=p.learning_rate, seed=p.seed, numPartitions=partitions, inputCol="tokens",
                       outputCol="v")
        vectors = w2v.fit(sessions).getVectors()
        return vectors.select(F.col("word").cast("int").alias("track_idx"),
                              vector_to_array("vector", "float32").alias("vector"))
    sessions.write.mode("overwrite").parquet(scratch)
    stored = spark.read.parquet(scratch)

    def stream():
        for row in stored.select("tokens").toLocalIterator(prefetchPartitions=True):
            yield row["tokens"]

    keys, matrix = train_gensim(SessionCorpus(stream), p)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    offsets = np.arange(len(matrix) + 1, dtype=np.int32) * matrix.shape[1]  # row i: values [offsets[i], offsets[i+1])
    vectors = pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel()))
    table = pa.table({"track_idx": pa.array(keys.astype(np.int32)), "vector": vectors})
    return rows_frame(spark, table, VECTORS)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


NEIGHBOUR_CHUNK_BYTES = 128 * 2**20


def broadcast_top_n(spark, queries, key: str, vector: str, keys: np.ndarray, matrix: np.ndarray, n: int,
                    names: tuple[str, str, str], cosine: bool = True, exclude_self: bool = False):
    """(names[0], names[1], names[2]) = (the query's `key`, a row's key in `keys`, cosine similarity
    or dot product) for each query row's n best rows of `matrix`, best first. The matrix is broadcast
    once; each task scores its own blocks of queries against it, a chunk at a time (top_neighbours).
    exclude_self: a query whose key is in `keys` never gets its own row."""
    shared = spark.sparkContext.broadcast((keys, matrix))

    def best(batches):
        keys_, matrix_ = shared.value
        position = {int(k): i for i, k in enumerate(keys_)} if exclude_self else None
        for block in batches:
            if block.empty:
                continue
            selves = np.array([position.get(int(k), -1) for k in block[key]]) if exclude_self else None
            idx, scores = top_neighbours(np.stack(block[vector].to_numpy()), matrix_, n, exclude_self=selves,
                                         cosine=cosine)
            yield pd.DataFrame({names[0]: np.repeat(block[key].to_numpy(dtype=np.int32), idx.shape[1]),
                                names[1]: keys_[idx.ravel()].astype(np.int32),
                                names[2]: scores.ravel().astype(np.float64)})

    return queries.select(key, vector).mapInPandas(best, f"{names[0]} int, {names[1]} int, {names[2]} double")


def top_neighbours(queries: np.ndarray, matrix: np.ndarray, n: int, exclude_self: np.ndarray | None = None,
                   chunk_bytes: int = NEIGHBOUR_CHUNK_BYTES, cosine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `matrix` rows and cosine similarities (cosine=False: dot products) of each
    query's n nearest rows, best first; equal similarities in the order of the rows.

    exclude_self: for each query, the row index of the query itself in `matrix` (or -1).
    Memory: similarities are computed for a chunk of queries at a time, so that a chunk's
    similarities and the selection's work (12 bytes per query and row) stay within chunk_bytes. A
    batch of 10,000 queries against a 60,000-track catalogue would otherwise hold about 7 GB (the
    scale bench's 3M rung was killed by the OS for it).
    """
    q, m = queries.astype(np.float32), matrix.astype(np.float32)
    if cosine:
        q, m = normalise_rows(q), normalise_rows(m)
    n = max(0, min(n, m.shape[0] - (1 if exclude_self is not None else 0)))
    indices = np.zeros((len(q), n), np.int64)
    similarities = np.zeros((len(q), n), np.float32)
    if n == 0:
        return indices, similarities
    step = max(1, chunk_bytes // (12 * m.shape[0]))
    for lo in range(0, len(q), step):
        hi = min(lo + step, len(q))
        scores = q[lo:hi] @ m.T
        if exclude_self is not None:
            rows = np.flatnonzero(exclude_self[lo:hi] >= 0)
            scores[rows, exclude_self[lo:hi][rows]] = -np.inf
        indices[lo:hi], similarities[lo:hi] = best_n(scores, n)
    return indices, similarities


# A row's n best of C scores: every SAMPLE_STRIDE-th score is a sample whose n-th best is at most the
# row's n-th best, so the scores at or above it hold the row's n best, about n x SAMPLE_STRIDE of them
# where a full partition of all C would be needed otherwise (numpy's argpartition was about 80% of the
# neighbour search: docs/performance.md, "The neighbour search's selection").
SAMPLE_STRIDE = 8


def best_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(column indices, scores) of each row's n largest scores, largest first, equal scores in the
    order of their columns. `scores` (rows x C float32) may be overwritten."""
    rows, columns = scores.shape
    stride = min(SAMPLE_STRIDE, columns // (2 * n))
    if stride >= 2:
        sample = scores[:, ::stride]
        floor = np.partition(sample, sample.shape[1] - n, axis=1)[:, sample.shape[1] - n]
        if np.isfinite(floor).all():
            above = scores >= floor[:, None]
            counts = np.count_nonzero(above, axis=1)
            # many equal scores at the floor (a zero vector's row) fall back to the stable sort below
            if counts.min() >= n and counts.sum() <= 4 * rows * n * stride:
                at, col = np.nonzero(above)
                value = scores[at, col]
                order = np.lexsort((col, -value, at))  # by row, then score descending, then column
                first = np.concatenate(([0], np.cumsum(counts)[:-1]))
                take = order[(first[:, None] + np.arange(n)).ravel()]
                return col[take].reshape(rows, n), value[take].reshape(rows, n)
    # a small row (under 4n scores) or a row of ties: a stable sort of all its scores, in place
    np.negative(scores, out=scores)  # ascending distance = descending score
    best = np.argsort(scores, axis=1, kind="stable")[:, :n]
    return best, -np.take_along_axis(scores, best, axis=1)
