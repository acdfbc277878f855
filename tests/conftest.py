"""One Spark session (local[2], Delta, few shuffle partitions, UI off) for the whole test run, and
configs whose warehouse and raw folders are per-test temporary directories."""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Python workers import udfs/models: they inherit this environment, not the driver's sys.path.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

from jobs.core.config import Config, load_config, with_overrides  # noqa: E402
from jobs.core.session import SMALL_NIGHT  # noqa: E402

SHARED = ROOT.parent / "shared"
LASTFM_SAMPLE = SHARED / "data" / "lastfm1k-sample" / "listens.tsv"


def command_lines() -> dict[int, str]:
    """Every running process's command line (its arguments joined by spaces), by pid, from /proc."""
    lines = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines[int(cmdline.parent.name)] = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return lines


TEST_SPARK = [
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.ui.enabled=false",
    "spark.conf.spark.driver.memory=2g",
    "spark.conf.spark.databricks.delta.snapshotPartitions=1",
    "spark.conf.spark.sql.sources.parallelPartitionDiscovery.parallelism=1",
    "log_level=WARNING",
    # A test's data is a few thousand rows, where generating and compiling Java for every distinct
    # query (whole-stage code generation, then Janino) and re-planning between query stages (adaptive
    # execution) cost more than they save: Spark's interpreted expressions run the same queries to the
    # same results, and tests/test_clean.py with tests/test_recommend.py took 0.71x the time (docs/performance.md,
    # "Interpreted execution for the tests"). The whole test session runs the settings the nightly gives a small
    # night's stages (nightly.interpreted_below_rows); the shipped configs keep Spark's defaults.
    *(f"spark.conf.{key}={value}" for key, value in SMALL_NIGHT["interpreted"].items()),
]


@pytest.fixture(scope="session")
def base_cfg(tmp_path_factory) -> Config:
    root = tmp_path_factory.mktemp("setlist")
    return load_config(ROOT / "conf" / "local.yaml",
                       [f"warehouse={root / 'warehouse'}", f"raw_path={root / 'raw'}", *TEST_SPARK])


@pytest.fixture(scope="session")
def spark(base_cfg):
    from jobs.core.session import get_spark
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


NIGHTS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
NIGHTLY_K = 12


@pytest.fixture(scope="session")
def nights(spark, base_cfg, tmp_path_factory):
    """A warehouse after the first two of three generated days, run by `backfill` with the model
    stages on both (shared, read by test_nightly, test_recommend, test_evaluate and copied by
    test_forget; the third night is run by the tests that need it)."""
    from jobs import backfill, generate
    root = tmp_path_factory.mktemp("nightly")
    cfg = with_overrides(base_cfg, [
        f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}",
        *small_generate(days=3, users=60, events=60 * 25 * 3, dirty=0.01, end_date="2026-01-03", tracks=400,
                        artists=50, genres=4),
        "embed.vector_size=16", "cluster.k=4", "cluster.segments=3", "als.rank=8", "als.max_iter=5",
        "train.embed_dim=16", "train.hidden=16", "train.epochs=1", "train.window=5", "train.sequence_files=2",
        "train.eval_examples=500", "train.backend=torch-distributor", "train.timeout_minutes=4",
        "als.tune_minutes=0", "rank.n_estimators=30", "rank.max_depth=4", "rank.workers=1",
        f"recommend.k={NIGHTLY_K}", "recommend.max_per_artist=2", "recommend.min_history=40",
        "recommend.candidates_per_source=60", "backfill.model_days=2",
    ])
    generate.run(spark, cfg)
    return cfg, backfill.run(spark, cfg, NIGHTS[0], NIGHTS[1])


@pytest.fixture(scope="session")
def modelled(spark, base_cfg, tmp_path_factory):
    """Three generated, cleaned nights with planted taste, order and loyalty, few defects, and the
    last night's embeddings (shared by the model stages' tests)."""
    from jobs import clean, embed, generate, ingest
    root = tmp_path_factory.mktemp("models")
    cfg = with_overrides(base_cfg, [
        f"warehouse={root / 'wh'}", f"raw_path={root / 'raw'}",
        *small_generate(days=3, users=80, events=80 * 30 * 3, dirty=0.01, end_date="2026-01-03", tracks=600,
                        artists=60, genres=4),
        "embed.vector_size=16", "embed.epochs=5", "cluster.k_min=3", "cluster.k_max=5", "cluster.segments=4",
        "als.rank=8", "als.max_iter=6", "als.grid_ranks=[4, 8]", "als.grid_reg_params=[0.05]",
        "als.grid_alphas=[10.0]", "als.grid_confidences=[log]",
    ])
    generate.run(spark, cfg)
    for day in NIGHTS:
        ingest.run(spark, cfg, day)
        clean.run(spark, cfg, day)
    embed.run(spark, cfg, NIGHTS[-1])
    return cfg


def rows_for(spark, cfg, table, day=None):
    """A gold table's rows of run_date `day` (default: the last of NIGHTS)."""
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    return delta_io.read(spark, cfg, table).where(F.col("run_date") == F.lit(day or NIGHTS[-1]))
