"""models.diversify: the MMR pick with an artist cap, on plain pandas frames (no Spark)."""
from __future__ import annotations

import pandas as pd

from models.diversify import pick


def candidates(rows):
    return pd.DataFrame(rows, columns=["user_idx", "track_idx", "artist_name", "score", "source"])


def test_picks_exactly_k_by_score_with_ranks_one_to_k():
    frame = candidates([(1, t, f"artist {t}", 10.0 - t, "als") for t in range(1, 9)])
    out = pick(frame, 5, max_per_artist=2, mmr_lambda=1.0)
    assert out["track_idx"].tolist() == [1, 2, 3, 4, 5] and out["rank"].tolist() == [1, 2, 3, 4, 5]
    assert list(out.columns) == ["user_idx", "track_idx", "score", "source", "rank"]


def test_the_artist_cap_holds_while_other_artists_can_fill_the_list():
    frame = candidates([(1, t, "A" if t <= 5 else "B", 10.0 - t, "als") for t in range(1, 9)])
    out = pick(frame, 4, max_per_artist=2, mmr_lambda=1.0)
    assert out["track_idx"].tolist() == [1, 2, 6, 7]


def test_the_cap_is_relaxed_only_to_fill_k():
    frame = candidates([(1, t, "A", 10.0 - t, "als") for t in range(1, 5)] + [(1, 9, "B", 0.1, "popularity")])
    out = pick(frame, 4, max_per_artist=2, mmr_lambda=1.0)
    assert sorted(out["track_idx"].tolist()) == [1, 2, 3, 9] and len(out) == 4


def test_mmr_prefers_a_new_artist_over_a_slightly_better_repeat():
    frame = candidates([(1, 1, "A", 1.0, "als"), (1, 2, "A", 0.95, "als"), (1, 3, "B", 0.9, "als")])
    assert pick(frame, 2, max_per_artist=3, mmr_lambda=0.8)["track_idx"].tolist() == [1, 3]
    assert pick(frame, 2, max_per_artist=3, mmr_lambda=1.0)["track_idx"].tolist() == [1, 2]


def test_fewer_candidates_than_k_give_them_all_and_none_give_an_empty_frame():
    frame = candidates([(1, 1, None, 0.5, "popularity"), (1, 2, None, 0.7, "popularity")])
    assert pick(frame, 5, 1, 0.8)["track_idx"].tolist() == [2, 1]
    assert pick(candidates([]), 5, 1, 0.8).empty
