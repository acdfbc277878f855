"""Shared set-up for bench scripts: the project on sys.path, a local session from conf/local.yaml."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from jobs.core.config import load_config  # noqa: E402
from jobs.main import setup_logging  # noqa: E402


def session(overrides: list[str], java_options: tuple[str, ...] = ()):
    # Spark's own logging as under submit.sh (conf/log4j2.properties: warnings of Spark's noisy
    # loggers off), so a bench prints its figures, not pages of WARN lines; then the bench's own
    # driver Java options, if any.
    options = " ".join((f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}", *java_options))
    cfg = load_config(ROOT / "conf" / "local.yaml", [f"spark.conf.spark.driver.extraJavaOptions={options}", *overrides])
    setup_logging(cfg.log_level)
    from jobs.core.session import get_spark
    return get_spark(cfg), cfg


def generated_sizes(events: int, days: int) -> list[str]:
    """The `generate.*` settings of a bench's data: `events` events over `days` days, events/100
    users and events/50 tracks (at least 100 and 200), a tenth as many artists as tracks."""
    users, tracks = max(100, events // 100), max(200, events // 50)
    return [f"generate.events={events}", f"generate.users={users}", f"generate.tracks={tracks}",
            f"generate.artists={max(20, tracks // 10)}", f"generate.days={days}"]


def planted_sequences(spark, cfg, day, vocab: int, window: int, examples: int, users: int,
                      partitions: int) -> list[str]:
    """Write `examples` training windows into gold.sequences for `day`, each `window` consecutive
    track ids whose next track is always the last one plus one (structure a model can learn), spread
    over `users` users and `partitions` files; returns the train split's files (jobs.train.split_files)."""
    import numpy as np

    from jobs.core import delta_io
    from jobs.core.tables import GOLD_SEQUENCES
    from jobs.train import split_files
    starts = np.random.default_rng(0).integers(1, vocab - window - 1, examples)
    rows = [(day, "train", i % users, i, day, list(range(int(s), int(s) + window)), int(s) + window)
            for i, s in enumerate(starts)]
    delta_io.replace_date(spark.createDataFrame(rows, GOLD_SEQUENCES.schema).repartition(partitions), cfg,
                          GOLD_SEQUENCES, "run_date", day)
    return split_files(spark, cfg, day, "train")
