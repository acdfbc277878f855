"""Diversification: a greedy MMR pass over one user's candidates, with an artist cap. Pure pandas,
applied per user with `groupBy("user_idx").applyInPandas(diversifier(...), OUTPUT_SCHEMA)`."""
from __future__ import annotations

import numpy as np
import pandas as pd

OUTPUT_SCHEMA = "user_idx int, track_idx int, score double, source string, rank int"


def pick(frame: pd.DataFrame, k: int, max_per_artist: int, mmr_lambda: float) -> pd.DataFrame:
    """Exactly k rows (when there are k candidates) of one user's candidates (user_idx, track_idx,
    artist_name, score, source), ranked 1..k: each pick maximises mmr_lambda x relevance
    − (1 − mmr_lambda) x [artist already picked], with at most max_per_artist per artist, the cap
    relaxed only when the candidates cannot fill k otherwise. Relevance is the score over the best."""
    frame = frame.sort_values(["score", "track_idx"], ascending=[False, True]).reset_index(drop=True)
    top = frame["score"].iloc[0] if len(frame) else 1.0
    relevance = (frame["score"] / (top if top > 0 else 1.0)).to_numpy()
    artists = frame["artist_name"].fillna("").to_numpy()
    chosen: list[int] = []
    per_artist: dict[str, int] = {}
    for cap in (max_per_artist, None):  # second pass only if the cap leaves the list short
        while len(chosen) < k:
            best, best_value = -1, -np.inf
            for i in range(len(frame)):
                if i in chosen or (cap is not None and per_artist.get(artists[i], 0) >= cap):
                    continue
                value = mmr_lambda * relevance[i] - (1 - mmr_lambda) * (1.0 if per_artist.get(artists[i]) else 0.0)
                if value > best_value:
                    best, best_value = i, value
            if best < 0:
                break
            chosen.append(best)
            per_artist[artists[best]] = per_artist.get(artists[best], 0) + 1
        if len(chosen) >= k:
            break
    out = frame.iloc[chosen].copy()
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int32)
    return out[["user_idx", "track_idx", "score", "source", "rank"]]


def diversifier(k: int, max_per_artist: int, mmr_lambda: float):
    """`pick` with its settings bound, for applyInPandas."""
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        return pick(frame, k, max_per_artist, mmr_lambda)
    return apply
