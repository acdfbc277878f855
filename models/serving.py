"""Scoring a trained next-track LSTM on the executors: the weights are broadcast once, each task
rebuilds the network and scores its own windows. train (validation examples) and recommend (users'
latest sessions) both go through here. Saved models are loaded as weights only (never pickled code)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame, SparkSession

from models import storage
from models.lstm import LstmParams, NextTrackLSTM, Vocabulary

MODEL_FILE = "model.pt"


def saved_model(model: NextTrackLSTM, window: int, vocabulary: Vocabulary) -> dict:
    """What model.pt holds: the network's sizes, its weights, the window it reads and its vocabulary
    (the track_idx of tokens 1..n)."""
    return {"params": dict(model.params.__dict__), "state": model.state_dict(), "window": window,
            "vocabulary": torch.as_tensor(vocabulary.tracks, dtype=torch.int64)}


def vocabulary_of(saved: dict) -> Vocabulary:
    """The saved model's vocabulary (a model saved before vocabularies: every track_idx its own token)."""
    if "vocabulary" in saved:
        return Vocabulary(np.asarray(saved["vocabulary"]))
    return Vocabulary.identity(int(saved["params"]["vocab"]))


SCORE_CHUNK_BYTES = 128 * 2**20


def top_tracks(net: NextTrackLSTM, vocabulary: Vocabulary, windows: np.ndarray, n: int,
               chunk_bytes: int = SCORE_CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(track_idx [rows, n'], probabilities [rows, n']) of the n most probable next known tracks
    after each window of track_idx values (padding and the shared token are never proposed).
    Windows are scored a chunk at a time, so that a chunk's logits and probabilities (8 bytes per
    window and token) stay within chunk_bytes: a batch of 10,000 windows over a 60,000-token
    vocabulary would otherwise hold about 5 GB in each Python worker."""
    tokens = torch.as_tensor(vocabulary.tokens(windows), dtype=torch.long)
    width = min(n, len(vocabulary.tracks))
    step = max(1, chunk_bytes // (8 * vocabulary.size))
    tracks, values = [], []
    with torch.no_grad():
        for lo in range(0, len(tokens), step):
            probabilities = torch.softmax(net(tokens[lo:lo + step]), dim=1)
            probabilities[:, 0] = -1.0
            probabilities[:, vocabulary.shared] = -1.0
            top, indices = torch.topk(probabilities, width, dim=1)
            tracks.append(vocabulary.track_of(indices.numpy()))
            values.append(top.numpy())
    if not tracks:
        return np.zeros((0, width), np.int64), np.zeros((0, width), np.float32)
    return np.concatenate(tracks), np.concatenate(values)


def save(saved: dict, folder: str) -> str:
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    return storage.write_bytes(storage.join(folder, MODEL_FILE), buffer.getvalue())


def load(folder: str) -> dict:
    """model.pt of a model folder (local or URI), weights only."""
    return torch.load(io.BytesIO(storage.read_bytes(storage.join(folder, MODEL_FILE))), map_location="cpu",
                      weights_only=True)


def next_track_scores(spark: SparkSession, saved: dict, windows: DataFrame, key: str, n: int) -> DataFrame:
    """(key, track_idx, score): for every row of `windows` (key, x array<int> of the last tracks,
    0-padded on the left), the model's n most probable next tracks with their probabilities.
    `saved` holds "params" (LstmParams fields) and "state" (the state dict). Track indices beyond
    the model's vocabulary (rare or newer than the model) are read as its shared token."""
    buffer = io.BytesIO()
    torch.save({"params": saved["params"], "state": saved["state"],
                "vocabulary": torch.as_tensor(vocabulary_of(saved).tracks, dtype=torch.int64)}, buffer)
    shared = spark.sparkContext.broadcast(buffer.getvalue())
    key_type = dict(windows.dtypes)[key]

    def score(batches):
        state = torch.load(io.BytesIO(shared.value), map_location="cpu", weights_only=True)
        net = NextTrackLSTM(LstmParams(**state["params"]))
        net.load_state_dict(state["state"])
        net.eval()
        vocabulary = vocabulary_of(state)
        torch.set_num_threads(1)
        for block in batches:
            if block.empty:
                continue
            tracks, probabilities = top_tracks(net, vocabulary, np.stack(block["x"].to_numpy()), n)
            width = tracks.shape[1]
            yield pd.DataFrame({key: np.repeat(block[key].to_numpy(), width),
                                "track_idx": tracks.ravel().astype(np.int32),
                                "score": probabilities.ravel().astype(np.float64)})

    return windows.select(key, "x").mapInPandas(score, f"{key} {key_type}, track_idx int, score double")
