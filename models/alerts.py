"""Data-quality alerts of a cleaned day: measures against warn and fail thresholds.

clean measures, as the data flows (Spark's Observation API on its first pass over the day's bronze
rows): the rows, the quarantine rate by reason, the share of good records without a recording id,
and, before its ids are merged, the day's new users and tracks. Against the trailing median of the
last alerts.trailing_days cleaned days (silver.clean_runs) they become:
- quarantine_rate: quarantined / bronze rows;
- volume_drop: 1 − rows / trailing median (a day that lost most of its volume);
- volume_rise: rows / trailing median (a day that doubled itself, a re-delivered backlog);
- new_users_ratio, new_tracks_ratio: new keys / (trailing median + 1) (an upstream id change);
- missing_recording_id_rise: today's share of plays without a recording id − the trailing median's.
Each has [warn, fail] thresholds (alerts.<measure>); the ratios against the past need
alerts.min_history days of history.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Alert:
    measure: str
    value: float
    level: str          # "warn" | "fail"
    threshold: float

    def line(self) -> str:
        return f"{self.measure} {self.value:.3g} >= {self.level} threshold {self.threshold:g}"


def measures(rows: int, quarantined: int, good: int, good_without_mbid: int, new_users: int, new_tracks: int,
             history: list[dict], min_history: int) -> dict[str, float]:
    """The day's measures; history: earlier days' {bronze_rows, new_users, new_tracks, missing_mbid_share}."""
    out = {"quarantine_rate": quarantined / rows if rows else 0.0}
    share = good_without_mbid / good if good else 0.0
    out["missing_recording_id_share"] = share
    if len(history) >= min_history:
        volume = statistics.median(h["bronze_rows"] for h in history) or 1
        out["volume_drop"] = max(0.0, 1.0 - rows / volume)
        out["volume_rise"] = rows / volume
        out["new_users_ratio"] = new_users / (statistics.median(h["new_users"] for h in history) + 1)
        out["new_tracks_ratio"] = new_tracks / (statistics.median(h["new_tracks"] for h in history) + 1)
        past = [h["missing_mbid_share"] for h in history if h.get("missing_mbid_share") is not None]
        if len(past) >= min_history:
            out["missing_recording_id_rise"] = share - statistics.median(past)
    return out


def evaluate(measured: dict[str, float], thresholds: dict[str, list[float]]) -> list[Alert]:
    """The alerts the measures raise: the highest level each reaches."""
    alerts = []
    for name, (warn, fail) in thresholds.items():
        value = measured.get(name)
        if value is None:
            continue
        if value >= fail:
            alerts.append(Alert(name, value, "fail", fail))
        elif value >= warn:
            alerts.append(Alert(name, value, "warn", warn))
    return alerts
