"""One Spark session (local[2], Delta, few shuffle partitions, UI off) for the whole test run, and
configs whose warehouse and raw folders are per-test temporary directories."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Python workers import udfs/models: they inherit this environment, not the driver's sys.path.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from jobs.config import Config, load_config, with_overrides  # noqa: E402

SHARED = ROOT.parent / "shared"
LASTFM_SAMPLE = SHARED / "data" / "lastfm1k-sample" / "listens.tsv"

TEST_SPARK = [
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.ui.enabled=false",
    "spark.conf.spark.driver.memory=2g",
    "spark.conf.spark.databricks.delta.snapshotPartitions=1",
    "spark.conf.spark.sql.sources.parallelPartitionDiscovery.parallelism=1",
    "log_level=WARNING",
]


@pytest.fixture(scope="session")
def base_cfg(tmp_path_factory) -> Config:
    root = tmp_path_factory.mktemp("setlist")
    return load_config(ROOT / "conf" / "local.yaml",
                       [f"warehouse={root / 'warehouse'}", f"raw_path={root / 'raw'}", *TEST_SPARK])


@pytest.fixture(scope="session")
def spark(base_cfg):
    from jobs.session import get_spark
    session = get_spark(base_cfg)
    yield session
    session.stop()


@pytest.fixture
def cfg(base_cfg, tmp_path) -> Config:
    """A config of its own for one test: empty warehouse and raw folders under tmp_path."""
    return with_overrides(base_cfg, [f"warehouse={tmp_path / 'warehouse'}", f"raw_path={tmp_path / 'raw'}"])


def small_generate(days: int = 2, users: int = 30, events: int = 1500, dirty: float = 0.08, **more) -> list[str]:
    """Overrides for a small generated sample: every defect appears at this dirt rate."""
    keys = {"users": users, "tracks": 300, "artists": 40, "genres": 4, "events": events, "days": days,
            "end_date": "2026-01-02" if days == 2 else None, "dirty_fraction": dirty, "files_per_day": 1, **more}
    return [f"generate.{k}={v}" for k, v in keys.items() if v is not None]
