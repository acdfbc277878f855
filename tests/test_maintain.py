"""maintain: OPTIMIZE and VACUUM on real Delta tables, retention of scratch, checkpoints and
unpublished model folders; files and bytes before and after. And the nightly's change feed."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from jobs import maintain
from jobs.core import delta_io, records
from jobs.core.config import with_overrides
from jobs.core.errors import ConfigError
from jobs.core.paths import location
from jobs.core.tables import GOLD_RECOMMENDATIONS

DAY = dt.date(2026, 1, 20)


def test_maintain_compacts_vacuums_and_prunes_only_what_is_past_retention(spark, cfg):
    cfg = with_overrides(cfg, ["maintain.retain_hours=0", "maintain.allow_short_retention=true",
                               "maintain.scratch_days=7"])
    for i in range(6):  # six nights' small files in one partition's history
        row = {"run_date": DAY, "user_id": f"u{i}", "rank": 1, "track_id": "t", "artist_name": "A",
               "track_name": "T", "score": 1.0, "source": "als"}
        frame = spark.createDataFrame([row], GOLD_RECOMMENDATIONS.schema)
        if i:
            frame.write.format("delta").mode("append").save(GOLD_RECOMMENDATIONS.path(cfg))
        else:
            delta_io.replace_date(frame, cfg, GOLD_RECOMMENDATIONS, "run_date", DAY)
    old_scratch = Path(location(cfg, "scratch", "embed", "2026-01-01"))
    new_scratch = Path(location(cfg, "scratch", "embed", "2026-01-19"))
    old_ckpt = Path(location(cfg, "checkpoints", "lstm", "2026-01-02", "abc"))
    for folder in (old_scratch, new_scratch, old_ckpt):
        folder.mkdir(parents=True)
        (folder / "part-0").write_bytes(b"x" * 100)
    published = Path(location(cfg, "models", "als", "2026-01-19", "run-b"))
    stale = Path(location(cfg, "models", "als", "2026-01-19", "run-a"))
    for folder in (published, stale):
        folder.mkdir(parents=True)
        (folder / "metadata").write_text("{}")
    records.record_model(spark, cfg, dt.date(2026, 1, 19), "als", "als-x", "spark-mllib", 1, {}, {}, str(published))
    before_rows = sorted(tuple(r) for r in delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).collect())

    summary = maintain.run(spark, cfg, DAY)
    # the tables were created with the retention maintain wants: no commit only to set it
    operations = {h["operation"] for h in DeltaTable.forPath(spark, GOLD_RECOMMENDATIONS.path(cfg)).history().collect()}
    assert "SET TBLPROPERTIES" not in operations and {"OPTIMIZE", "VACUUM END"} <= operations
    assert summary["tables"][GOLD_RECOMMENDATIONS.full_name]["files_removed"] == 6
    assert summary["before"]["files"] > 0 and summary["after"]["bytes"] > 0  # reported, before and after
    assert summary["removed"] == {"scratch": 1, "checkpoints": 1, "models": 1}
    assert not old_scratch.exists() and new_scratch.exists() and not old_ckpt.exists()
    assert published.exists() and not stale.exists()
    parquet = list(Path(GOLD_RECOMMENDATIONS.path(cfg)).glob("run_date=*/*.parquet"))
    assert len(parquet) == 1  # compacted, and the replaced small files vacuumed
    assert sorted(tuple(r) for r in delta_io.read(spark, cfg, GOLD_RECOMMENDATIONS).collect()) == before_rows


def test_retention_below_deltas_safety_default_needs_an_explicit_yes(cfg):
    with pytest.raises(ConfigError, match="maintain.retain_hours: 1.0 is below Delta's safety default"):
        with_overrides(cfg, ["maintain.retain_hours=1"])
