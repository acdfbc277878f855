"""Shared set-up for bench scripts: the project on sys.path, a local session from conf/local.yaml."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from jobs.config import load_config  # noqa: E402
from jobs.main import setup_logging  # noqa: E402


def session(overrides: list[str]):
    # Spark's own logging as under submit.sh (conf/log4j2.properties: warnings of Spark's noisy
    # loggers off), so a bench prints its figures, not pages of WARN lines.
    log4j = f"spark.conf.spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}"
    cfg = load_config(ROOT / "conf" / "local.yaml", [log4j, *overrides])
    setup_logging(cfg.log_level)
    from jobs.session import get_spark
    return get_spark(cfg), cfg
