"""forget-user: after the erasure and the purge, no Delta row and no file under the warehouse (Parquet
decoded) holds the user id; every other user's rows are unchanged; re-ingesting the raw files keeps
the user out; a later nightly still works. On a copy of the nightly warehouse."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from conftest import NIGHTS, ROOT
from jobs import forget, ingest, nightly
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.rawfiles import raw_dir
from jobs.core.tables import (ALL_TABLES, GOLD_MODELS, GOLD_RECOMMENDATIONS, SILVER_ERASURES, SILVER_FEEDBACK,
                              SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS, SILVER_USERS)


def files_naming(root: Path, needle: str) -> list[str]:
    """Every file under root that holds `needle`: Parquet decoded (every value of every column), any
    other file as bytes."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            text = json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str)
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        if needle in text:
            found.append(str(path.relative_to(root)))
    return found


TIMES = ("ingest_time", "finished_at", "started_at", "created_at", "erased_at")


def snapshot(spark, cfg, table) -> tuple[list[str], list[tuple]]:
    """Every row of a table (its time columns left out, which a rewrite may change), read once."""
    frame = delta_io.read(spark, cfg, table)
    frame = frame.drop(*[c for c in TIMES if c in frame.columns])
    return frame.columns, [tuple(r) for r in frame.collect()]


def without(snap: tuple[list[str], list[tuple]], user_id: str, user_idx: int) -> list[tuple]:
    """A snapshot's rows that are not the user's (by user_id, else user_idx, else a raw line naming
    them; a null in that column is not kept, as a SQL comparison would not), sorted."""
    columns, rows = snap
    if "user_id" in columns:
        i = columns.index("user_id")
        rows = [r for r in rows if r[i] is not None and r[i] != user_id]
    elif "user_idx" in columns:
        i = columns.index("user_idx")
        rows = [r for r in rows if r[i] is not None and r[i] != user_idx]
    elif "raw" in columns:
        i = columns.index("raw")
        rows = [r for r in rows if r[i] is not None and user_id not in r[i]]
    return sorted(rows, key=repr)


def snapshots(spark, cfg) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every existing table of the warehouse, each read once."""
    return {t.full_name: snapshot(spark, cfg, t) for t in ALL_TABLES if delta_io.exists(spark, cfg, t)}


@pytest.fixture(scope="module")
def copied(spark, nights, tmp_path_factory):
    """The nightly warehouse copied (its model rows pointed at the copy), with a feedback line of the
    user to forget, a user who also has a quarantined line."""
    cfg, _ = nights
    root = tmp_path_factory.mktemp("forget")
    shutil.copytree(cfg.warehouse, root / "wh", ignore=shutil.ignore_patterns("_lease"))
    copy = with_overrides(cfg, [f"warehouse={root / 'wh'}", "maintain.retain_hours=0",
                                "maintain.allow_short_retention=true"])
    spark.sql(f"UPDATE delta.`{GOLD_MODELS.path(copy)}` SET path = replace(path, '{cfg.warehouse}', '{copy.warehouse}')")
    quarantined = delta_io.read(spark, copy, SILVER_QUARANTINE).where(F.col("format") == "lastfm-tsv").collect()
    users = {r["user_id"]: r["user_idx"] for r in delta_io.read(spark, copy, SILVER_USERS).collect()}
    user = next(u for u in sorted(users) if any(r["raw"].startswith(u + "\t") for r in quarantined))
    track = delta_io.read(spark, copy, SILVER_TRACKS).first()
    folder = root / "feedback" / "feedback-jsonl" / f"date={NIGHTS[1]}"
    folder.mkdir(parents=True)
    (folder / "f.jsonl").write_text(json.dumps({"user_name": user, "event": "like", "timestamp": 1767279600,
                                                "track_metadata": {"artist_name": track["artist_name"],
                                                                   "track_name": track["track_name"]}}) + "\n")
    ingest.run(spark, with_overrides(copy, [f"raw_path={root / 'feedback'}"]), NIGHTS[1], "feedback-jsonl")
    return copy, user, users[user], root


def test_forget_user_removes_every_trace_and_keeps_everyone_else(spark, copied):
    cfg, user, idx, root = copied
    warehouse = Path(cfg.warehouse)
    before = snapshots(spark, cfg)  # each table read once, before and once after the erasure
    holding = {name for name, snap in before.items() if without(snap, user, idx) != sorted(snap[1], key=repr)}
    assert {SILVER_PLAYS.full_name, SILVER_USERS.full_name, SILVER_QUARANTINE.full_name, SILVER_FEEDBACK.full_name,
            GOLD_RECOMMENDATIONS.full_name, "bronze.listens", "gold.user_segments", "gold.sequences",
            "gold.candidates", "gold.als_user_factors"} <= holding
    assert files_naming(warehouse, user)  # before: the id is in data files

    summary = forget.run(spark, cfg, [user])
    assert summary["rows_removed"][SILVER_PLAYS.full_name] > 0 and summary["rows_removed"]["models.als.userFactors"] >= 1
    assert files_naming(warehouse, user) == []  # no Delta row, no data file, no log, no event log names the user
    after = snapshots(spark, cfg)
    assert set(after) == set(before) | {SILVER_ERASURES.full_name}
    for name, snap in before.items():
        if name == SILVER_ERASURES.full_name:
            continue
        assert without(after[name], user, idx) == without(snap, user, idx), name
        columns, rows = after[name]
        if "user_idx" in columns and name != "gold.als_item_factors":
            assert not [r for r in rows if r[columns.index("user_idx")] == idx], name
    erasure = delta_io.read(spark, cfg, SILVER_ERASURES).collect()
    assert len(erasure) == 1 and erasure[0]["user_hash"] != user and len(erasure[0]["user_hash"]) == 64
    from pyspark.ml.recommendation import ALSModel
    als_path = delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'als'").orderBy(F.desc("run_date")).first()["path"]
    assert ALSModel.load(als_path).userFactors.where(F.col("id") == idx).count() == 0

    # re-ingesting the day's raw file keeps the user out; a later nightly still works without them
    again = ingest.run(spark, cfg, NIGHTS[0])
    assert sum(v["erased"] for v in again.values() if isinstance(v, dict) and "erased" in v) > 0
    outcome = nightly.run(spark, cfg, NIGHTS[2])
    assert not any(v.startswith("FAILED") for v in outcome.values())
    for table in (SILVER_PLAYS, SILVER_USERS, GOLD_RECOMMENDATIONS):
        assert delta_io.read(spark, cfg, table).where(F.col("user_id") == user).count() == 0
    assert delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).where(F.col("run_date") == F.lit(NIGHTS[2])).count() > 0
    bronze = delta_io.read(spark, cfg, delta_table("bronze.listens"))
    assert bronze.where(F.col("raw").contains(user)).count() == 0
    assert Path(raw_dir(cfg, "lastfm-tsv", NIGHTS[0])).exists()  # raw files are the operator's to delete


def test_forget_user_from_the_command_line_needs_a_user(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jobs.main", "forget-user", "--conf", str(ROOT / "conf" / "local.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--user ID is required" in out.stderr


def delta_table(name: str):
    return next(t for t in ALL_TABLES if t.full_name == name)
