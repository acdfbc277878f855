"""models.diversify: the MMR pick with an artist cap as window functions, checked case by case and
against the greedy loop it replaces (kept here as the oracle) on random candidates."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd

from models.diversify import diversify

SCHEMA = "user_idx int, track_idx int, artist_name string, score double, source string"


def greedy(frame: pd.DataFrame, k: int, max_per_artist: int, mmr_lambda: float) -> list[int]:
    """The per-user greedy MMR loop, literally: each pick maximises mmr_lambda x relevance
    − (1 − mmr_lambda) x [artist already picked], under the cap, relaxed only to fill k."""
    frame = frame.sort_values(["score", "track_idx"], ascending=[False, True]).reset_index(drop=True)
    top = frame["score"].iloc[0] if len(frame) else 1.0
    relevance = (frame["score"] / (top if top > 0 else 1.0)).to_numpy()
    artists = frame["artist_name"].fillna("").to_numpy()
    chosen: list[int] = []
    per_artist: dict[str, int] = {}
    for cap in ((max_per_artist or None), None):
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
    return frame.iloc[chosen]["track_idx"].tolist()


def picked(spark, rows, k, cap, lam) -> dict[int, list[int]]:
    out = diversify(spark.createDataFrame(rows, SCHEMA), k, cap, lam).orderBy("user_idx", "rank").collect()
    lists: dict[int, list[int]] = {}
    for r in out:
        lists.setdefault(r["user_idx"], []).append(r["track_idx"])
        assert r["rank"] == len(lists[r["user_idx"]])  # ranks 1..k in order
    return lists


def test_picks_exactly_k_by_score_with_ranks_one_to_k(spark):
    rows = [(1, t, f"artist {t}", 10.0 - t, "als") for t in range(1, 9)]
    assert picked(spark, rows, 5, 2, 1.0) == {1: [1, 2, 3, 4, 5]}
    out = diversify(spark.createDataFrame(rows, SCHEMA), 5, 2, 1.0)
    assert out.columns == ["user_idx", "track_idx", "score", "source", "rank"]


def test_the_artist_cap_holds_while_other_artists_can_fill_the_list(spark):
    rows = [(1, t, "A" if t <= 5 else "B", 10.0 - t, "als") for t in range(1, 9)]
    assert picked(spark, rows, 4, 2, 1.0) == {1: [1, 2, 6, 7]}


def test_the_cap_is_relaxed_only_to_fill_k(spark):
    rows = [(1, t, "A", 10.0 - t, "als") for t in range(1, 5)] + [(1, 9, "B", 0.1, "popularity")]
    assert picked(spark, rows, 4, 2, 1.0) == {1: [1, 2, 9, 3]}


def test_mmr_prefers_a_new_artist_over_a_slightly_better_repeat(spark):
    rows = [(1, 1, "A", 1.0, "als"), (1, 2, "A", 0.95, "als"), (1, 3, "B", 0.9, "als")]
    assert picked(spark, rows, 2, 3, 0.8) == {1: [1, 3]}
    assert picked(spark, rows, 2, 3, 1.0) == {1: [1, 2]}
    assert picked(spark, rows, 2, 0, 1.0) == {1: [1, 2]}  # no cap


def test_fewer_candidates_than_k_give_them_all(spark):
    rows = [(1, 1, None, 0.5, "popularity"), (1, 2, None, 0.7, "popularity")]
    assert picked(spark, rows, 5, 1, 0.8) == {1: [2, 1]}


def test_the_window_pick_equals_the_greedy_loop_on_random_candidates(spark):
    rng = random.Random(11)
    rows, settings = [], []
    for user in range(1, 41):
        n = rng.randint(0, 30)
        artists = [f"a{rng.randint(1, rng.randint(1, 8))}" if rng.random() > 0.05 else None for _ in range(n)]
        scores = [round(rng.choice([rng.random(), rng.randint(0, 3) / 3.0]), 3) for _ in range(n)]
        rows += [(user, t + 1, artists[t], scores[t], "als") for t in range(n)]
    frame = pd.DataFrame(rows, columns=["user_idx", "track_idx", "artist_name", "score", "source"])
    for k, cap, lam in ((10, 2, 0.8), (10, 0, 0.5), (7, 3, 1.0), (12, 1, 0.0), (5, 0, 1.0)):
        expected = {u: greedy(g, k, cap, lam) for u, g in frame.groupby("user_idx")}
        got = picked(spark, rows, k, cap, lam)
        settings.append((k, cap, lam))
        assert got == {u: v for u, v in expected.items() if v}, (k, cap, lam)
    assert len(settings) == 5
