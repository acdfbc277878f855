"""The synthetic listening model: deterministic, and with the structure the models must find."""
from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from conftest import small_generate
from jobs import generate
from jobs.core.config import with_overrides
from models.synthetic import Behaviour, WorldParams, user_lines, world

PARAMS = WorldParams(seed=7, tracks=3000, artists=300, genres=6, mbid_fraction=0.7, popularity_exponent=1.1)
FLOOR = dt.date(2002, 1, 1)


def plays_of(behaviour: Behaviour, users=range(120)):
    """(user, track) per clean line, decoding the track from its names."""
    w = world(PARAMS)
    by_name = {(w.artist_names[w.track_artist[t]], w.track_names[t]): t for t in range(PARAMS.tracks)}
    out = []
    for u in users:
        for _, line in user_lines(w, behaviour, PARAMS.seed, u, dt.date(2026, 1, 1), FLOOR):
            if line.startswith("{"):
                meta = json.loads(line)["track_metadata"]
                artist, track = meta["artist_name"], meta["track_name"]
            else:
                _, _, _, artist, _, track = line.split("\t")
            out.append((u, by_name[(artist, track)]))
    return w, out


CLEAN = Behaviour(days=10, events_per_user=150, sequential_prob=0.5, repeat_prob=0.2, artist_loyalty=0.4,
                  active_day_prob=0.6,
                  dirty_fraction=0.0, listenbrainz_fraction=0.5)


def test_catalogue_has_artists_with_many_tracks_and_power_law_popularity():
    w, plays = plays_of(CLEAN)
    per_artist = np.bincount(w.track_artist)
    assert per_artist.min() >= 1 and per_artist.max() >= 5 * np.median(per_artist)
    counts = np.sort(np.bincount([t for _, t in plays], minlength=PARAMS.tracks))[::-1]
    top = counts[: PARAMS.tracks // 10].sum() / counts.sum()
    assert top > 0.4  # the top 10% of tracks take a large share of plays
    assert 0.6 < (w.track_mbids != "").mean() < 0.8


def test_users_have_tastes_sequences_and_repeats():
    w, plays = plays_of(CLEAN)
    by_user = collections.defaultdict(list)
    for u, t in plays:
        by_user[u].append(t)
    main_share = np.mean([np.mean(w.track_genre[ts] == u % PARAMS.genres) for u, ts in by_user.items()])
    assert main_share > 0.7  # planted taste: most plays in the user's main genre
    follows = np.mean([w.successor[a] == b for ts in by_user.values() for a, b in zip(ts, ts[1:])])
    assert 0.3 < follows < 0.6  # planted order: the next track is often the planted successor
    repeats = np.mean([1 - len(set(ts)) / len(ts) for ts in by_user.values() if len(ts) > 20])
    assert repeats > 0.3


def test_dirty_fraction_controls_defects_and_output_is_deterministic():
    dirty = Behaviour(**{**CLEAN.__dict__, "dirty_fraction": 0.1})
    w = world(PARAMS)
    lines = [l for u in range(40) for l in user_lines(w, dirty, 7, u, dt.date(2026, 1, 1), FLOOR)]
    again = [l for u in range(40) for l in user_lines(w, dirty, 7, u, dt.date(2026, 1, 1), FLOOR)]
    assert lines == again
    bad_tsv = sum(1 for _, l in lines if not l.startswith("{") and len(l.split("\t")) != 6)
    assert bad_tsv > 0


def test_generate_job_is_deterministic_from_the_seed(spark, base_cfg, tmp_path):
    def run(folder):
        cfg = with_overrides(base_cfg, [f"raw_path={tmp_path / folder}", *small_generate(days=2, users=12,
                                                                                           events=300)])
        generate.run(spark, cfg)
        text = spark.read.text(str(tmp_path / folder / "*" / "*"))
        return sorted((Path(r[0]).parent.parent.name, Path(r[0]).parent.name, r[1])
                      for r in text.select(F.input_file_name(), "value").collect())
    first, second = run("a"), run("b")
    assert first == second and len(first) > 200
