"""A generative model of listening, for synthetic logs with structure worth finding.

The world (catalogue) is a pure function of the seed and the sizes, so every Spark task rebuilds
the same one from a few numbers and no event ever passes through the driver:
- genres hold artists, artists hold tracks (a heavy-tailed number each), and every track has a
  MusicBrainz recording id with probability mbid_fraction;
- popularity within a genre follows a Zipf law;
- every track has a planted successor (the next track of its artist's album), the order a next-track
  model can learn.
A user is also a pure function of (seed, user): a taste (a main genre and a second one, and a few
loved artists of the main genre they keep coming back to), a set of favourite tracks for repeat listening, a level of activity and the client (log format) they use.
Their days are active or not; an active day holds sessions separated by more than half an hour, each
session a walk that follows successors, returns to favourites, or samples the taste.

Dirty rows: with probability dirty_fraction a row gets one defect of DEFECTS (each a rule the
cleaner enforces, or an exact duplicate), and as often a harmless mess the cleaner must undo
(decomposed Unicode, stray whitespace).
"""
from __future__ import annotations

import datetime as dt
import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from udfs import quality as Q
from udfs.formats import LASTFM_TSV, LISTENBRAINZ_JSONL

# Every defect is a quarantine reason the cleaner must find, or an exact duplicate it must drop.
DUPLICATE = "duplicate"
DEFECTS = (Q.WRONG_COLUMN_COUNT, Q.EMPTY_USER, Q.MISSING_TIMESTAMP, Q.UNPARSABLE_TIMESTAMP,
           Q.TIMESTAMP_BEFORE_FLOOR, Q.TIMESTAMP_AFTER_RUN_DATE, Q.MISSING_TRACK, DUPLICATE)
# A line cut short is a wrong column count in TSV and malformed JSON in JSON lines.
PLANTED_REASONS = (set(DEFECTS) - {DUPLICATE}) | {Q.MALFORMED_JSON}

_ADJ = ["Velvet", "Neon", "Silent", "Golden", "Midnight", "Paper", "Electric", "Crystal", "Wild", "Hollow",
        "Sonic", "Lunar", "Café", "Señor", "Blue", "Mötley", "Frozen", "Crimson", "Über", "Little", "Ångström",
        "Quiet", "Broken", "Solar", "Tokyo", "Zoë's", "Electric", "Northern", "東京", "Río"]
_NOUN = ["Foxes", "Harbour", "Machines", "Rivers", "Gardens", "Signals", "Echoes", "Wolves", "Lights", "Ghosts",
         "Mirrors", "Orchids", "Engines", "Oceans", "Sparrows", "Canyons", "Pilots", "Tigers", "Lanterns",
         "Comets", "Ballons", "Noël", "夜明け", "Corazón", "Straße", "Fjords", "Atlas", "Diamonds", "Satellites"]
_WORD = ["Love", "Night", "Fire", "Rain", "Heart", "Dream", "Light", "Road", "Home", "Time", "Sky", "Song",
         "Shadow", "Summer", "Winter", "Ocean", "Gold", "Stone", "Glass", "River", "Déjà Vu", "Mañana", "Ça Va",
         "さくら", "Liebe", "Sol", "Blue", "Silver", "Thunder", "Fever"]


@dataclass(frozen=True)
class WorldParams:
    seed: int
    tracks: int
    artists: int
    genres: int
    mbid_fraction: float
    popularity_exponent: float


@dataclass(frozen=True)
class Behaviour:
    days: int
    events_per_user: float
    sequential_prob: float
    repeat_prob: float
    artist_loyalty: float
    active_day_prob: float
    dirty_fraction: float
    listenbrainz_fraction: float


def _uuid(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.integers(0, 16, size=(n, 32))
    hexd = np.array(list("0123456789abcdef"))[raw]
    joined = ["".join(r) for r in hexd]
    return np.array([f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in joined], dtype=object)


class World:
    """The catalogue: track -> artist -> genre, names, ids, popularity and successors."""

    def __init__(self, p: WorldParams):
        rng = np.random.default_rng([p.seed, 0])
        self.params = p
        self.artist_genre = rng.permutation(np.arange(p.artists) % p.genres)
        # Every artist has one track; the rest go to artists by a heavy-tailed share.
        share = rng.pareto(1.2, p.artists) + 1.0
        extra = rng.choice(p.artists, size=p.tracks - p.artists, p=share / share.sum())
        track_artist = np.sort(np.concatenate([np.arange(p.artists), extra]))
        self.track_artist = track_artist
        self.track_genre = self.artist_genre[track_artist]
        # Position of each track on its artist's "album", and its successor: the next one, wrapping.
        starts = np.searchsorted(track_artist, np.arange(p.artists))
        counts = np.bincount(track_artist, minlength=p.artists)
        self.artist_start, self.artist_count = starts, counts
        self.genre_artists = [np.flatnonzero(self.artist_genre == g) for g in range(p.genres)]
        self.track_number = np.arange(p.tracks) - starts[track_artist]
        nxt = np.arange(p.tracks) + 1
        wrap = self.track_number + 1 >= counts[track_artist]
        nxt[wrap] = starts[track_artist[wrap]]
        self.successor = nxt
        self.artist_names = np.array([self._artist_name(a) for a in range(p.artists)], dtype=object)
        self.track_names = np.array([self._track_name(n) for n in self.track_number], dtype=object)
        self.artist_mbids = _uuid(rng, p.artists)
        has_mbid = rng.random(p.tracks) < p.mbid_fraction
        mbids = _uuid(rng, p.tracks)
        self.track_mbids = np.where(has_mbid, mbids, "")
        # Zipf popularity inside each genre, in a random order of its tracks.
        self.genre_tracks = []
        self.genre_cdf = []
        for g in range(p.genres):
            members = rng.permutation(np.flatnonzero(self.track_genre == g))
            weights = 1.0 / np.arange(1, len(members) + 1) ** p.popularity_exponent
            self.genre_tracks.append(members)
            self.genre_cdf.append(np.cumsum(weights) / weights.sum())

    @staticmethod
    def _artist_name(a: int) -> str:
        base = f"{_ADJ[a % len(_ADJ)]} {_NOUN[(a // len(_ADJ)) % len(_NOUN)]}"
        cycle = a // (len(_ADJ) * len(_NOUN))
        return base if cycle == 0 else f"{base} {cycle + 1}"

    @staticmethod
    def _track_name(n: int) -> str:
        base = f"{_WORD[n % len(_WORD)]} {_WORD[(n // len(_WORD) + 7) % len(_WORD)]}"
        cycle = n // (len(_WORD) * len(_WORD))
        return base if cycle == 0 else f"{base} (Part {cycle + 1})"

    def sample_genre(self, rng: np.random.Generator, genre: int, n: int) -> np.ndarray:
        picks = np.searchsorted(self.genre_cdf[genre], rng.random(n), side="right")
        picks = np.minimum(picks, len(self.genre_tracks[genre]) - 1)
        return self.genre_tracks[genre][picks]


@lru_cache(maxsize=4)
def world(p: WorldParams) -> World:
    return World(p)


def user_format(seed: int, user: int, listenbrainz_fraction: float) -> str:
    rng = np.random.default_rng([seed, 1, user])
    return LISTENBRAINZ_JSONL if rng.random() < listenbrainz_fraction else LASTFM_TSV


def user_name(user: int, fmt: str) -> str:
    return f"user_{user:06d}" if fmt == LASTFM_TSV else f"lb-listener-{user:06d}"


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(fmt: str, user: str, ts: int | str | None, w: World, track: int, drop_track: bool = False,
          wrong_columns: bool = False, mess: bool = False) -> str:
    artist = w.artist_names[w.track_artist[track]]
    name = "" if drop_track else w.track_names[track]
    mbid = "" if drop_track else w.track_mbids[track]
    artist_mbid = w.artist_mbids[w.track_artist[track]]
    if mess:
        artist = "  " + unicodedata.normalize("NFD", artist) + " "
        name = unicodedata.normalize("NFD", name).replace(" ", "  ")
    if fmt == LASTFM_TSV:
        ts_text = _iso(ts) if isinstance(ts, (int, np.integer)) else (ts or "")
        fields = [user, ts_text, artist_mbid, artist, mbid, name]
        if wrong_columns:
            fields = fields[:4]
        return "\t".join(fields)
    record = {"user_name": user, "track_metadata": {
        "artist_name": artist, "track_name": name,
        "additional_info": {"recording_mbid": mbid or None, "artist_mbids": [artist_mbid]}}}
    if ts is not None:
        record["listened_at"] = int(ts) if isinstance(ts, (int, np.integer)) else ts
    text = json.dumps(record, ensure_ascii=False)
    return text[: len(text) // 2] if wrong_columns else text


def user_lines(w: World, b: Behaviour, seed: int, user: int, start: dt.date, ts_floor: dt.date):
    """Yield (date 'YYYY-MM-DD', line) for every record one user logs over the days from start."""
    rng = np.random.default_rng([seed, 2, user])
    fmt = user_format(seed, user, b.listenbrainz_fraction)
    name = user_name(user, fmt)
    genres = w.params.genres
    main_genre = user % genres
    second_genre = (main_genre + 1 + rng.integers(0, max(1, genres - 1))) % genres if genres > 1 else main_genre
    favourites = w.sample_genre(rng, main_genre, 8)
    candidates = w.genre_artists[main_genre]
    loved_artists = rng.choice(candidates, size=min(5, len(candidates)), replace=False)
    activity = rng.lognormal(0.0, 0.5) / np.exp(0.125)  # mean 1
    per_active_day = b.events_per_user * activity / max(b.days * b.active_day_prob, 1e-9)

    def taste(n: int) -> np.ndarray:
        main = rng.random(n) < 0.8
        out = w.sample_genre(rng, second_genre, n)
        out[main] = w.sample_genre(rng, main_genre, int(main.sum()))
        loyal = rng.random(n) < b.artist_loyalty
        artists = loved_artists[rng.integers(0, len(loved_artists), int(loyal.sum()))]
        out[loyal] = w.artist_start[artists] + (rng.random(len(artists)) * w.artist_count[artists]).astype(np.int64)
        return out

    for d in range(b.days):
        day = start + dt.timedelta(days=d)
        if rng.random() >= b.active_day_prob:
            continue
        n_day = rng.poisson(per_active_day)
        if n_day == 0:
            continue
        midnight = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp())
        clock = midnight + int(rng.integers(6 * 3600, 9 * 3600))
        day_iso = day.isoformat()
        while n_day > 0:
            length = min(n_day, int(rng.geometric(1 / 8)))
            n_day -= length
            durations = rng.integers(150, 330, size=length)
            if clock + int(durations.sum()) >= midnight + 86400 - 60:
                break
            tracks = np.empty(length, dtype=np.int64)
            fresh = taste(length)
            moves = rng.random(length)
            tracks[0] = fresh[0]
            for k in range(1, length):
                if moves[k] < b.sequential_prob:
                    tracks[k] = w.successor[tracks[k - 1]]
                elif moves[k] < b.sequential_prob + b.repeat_prob:
                    tracks[k] = favourites[rng.integers(0, len(favourites))]
                else:
                    tracks[k] = fresh[k]
            times = clock + np.concatenate([[0], np.cumsum(durations[:-1])])
            for track, ts in zip(tracks, times):
                yield from _maybe_dirty(rng, b, w, fmt, name, int(ts), int(track), day, ts_floor, day_iso)
            clock = int(times[-1]) + int(durations[-1]) + int(rng.integers(35 * 60, 90 * 60))


def _maybe_dirty(rng, b: Behaviour, w: World, fmt: str, name: str, ts: int, track: int, day: dt.date,
                 ts_floor: dt.date, day_iso: str):
    roll = rng.random()
    if roll >= 2 * b.dirty_fraction:
        yield day_iso, _line(fmt, name, ts, w, track)
        return
    if roll >= b.dirty_fraction:
        yield day_iso, _line(fmt, name, ts, w, track, mess=True)
        return
    defect = DEFECTS[int(rng.integers(0, len(DEFECTS)))]
    if defect == Q.WRONG_COLUMN_COUNT:
        yield day_iso, _line(fmt, name, ts, w, track, wrong_columns=True)
    elif defect == Q.EMPTY_USER:
        yield day_iso, _line(fmt, "", ts, w, track)
    elif defect == Q.MISSING_TIMESTAMP:
        yield day_iso, _line(fmt, name, None, w, track)
    elif defect == Q.UNPARSABLE_TIMESTAMP:
        yield day_iso, _line(fmt, name, "yesterday 25:61" if fmt == LASTFM_TSV else "soon", w, track)
    elif defect == Q.TIMESTAMP_BEFORE_FLOOR:
        floor = int(dt.datetime.combine(ts_floor, dt.time(), dt.timezone.utc).timestamp())
        yield day_iso, _line(fmt, name, floor - int(rng.integers(86400, 400 * 86400)), w, track)
    elif defect == Q.TIMESTAMP_AFTER_RUN_DATE:
        yield day_iso, _line(fmt, name, ts + int(rng.integers(2, 30)) * 86400, w, track)
    elif defect == Q.MISSING_TRACK:
        yield day_iso, _line(fmt, name, ts, w, track, drop_track=True)
    else:  # an exact duplicate: the same record sent twice
        line = _line(fmt, name, ts, w, track)
        yield day_iso, line
        yield day_iso, line
