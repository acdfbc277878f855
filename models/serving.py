"""Scoring a trained next-track LSTM on the executors: the weights are broadcast once, each task
rebuilds the network and scores its own windows. train (validation examples) and recommend (users'
latest sessions) both go through here. Saved models are loaded as weights only (never pickled code)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from models import storage
from models.lstm import LstmParams, NextTrackLSTM, next_tracks

MODEL_FILE = "model.pt"


def saved_model(model: NextTrackLSTM, window: int) -> dict:
    """What model.pt holds: the network's sizes, its weights and the window it reads."""
    return {"params": dict(model.params.__dict__), "state": model.state_dict(), "window": window}


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
    the model's vocabulary (tracks newer than the model) are read as padding."""
    buffer = io.BytesIO()
    torch.save({"params": saved["params"], "state": saved["state"]}, buffer)
    shared = spark.sparkContext.broadcast(buffer.getvalue())
    key_type = dict(windows.dtypes)[key]

    def score(batches):
        state = torch.load(io.BytesIO(shared.value), map_location="cpu", weights_only=True)
        net = NextTrackLSTM(LstmParams(**state["params"]))
        net.load_state_dict(state["state"])
        net.eval()
        torch.set_num_threads(1)
        for block in batches:
            if block.empty:
                continue
            x = torch.as_tensor(np.stack(block["x"].to_numpy()), dtype=torch.long)
            indices, probabilities = next_tracks(net, x, n)
            width = indices.shape[1]
            yield pd.DataFrame({key: np.repeat(block[key].to_numpy(), width),
                                "track_idx": indices.numpy().ravel().astype(np.int32),
                                "score": probabilities.numpy().ravel().astype(np.float64)})

    vocab = saved["params"]["vocab"]
    clipped = windows.select(key, F.transform("x", lambda t: F.when(t < vocab, t).otherwise(0)).alias("x"))
    return clipped.mapInPandas(score, f"{key} {key_type}, track_idx int, score double")
