"""Every path that is not a table, under the warehouse: one helper for local folders and URIs.

`location(cfg, kind, *parts)`: models (`<warehouse>/models/...`), reports (`<warehouse>/reports/...`),
checkpoints (`<warehouse>/_checkpoints/...`) and scratch (`<warehouse>/_scratch/...`). A URI stays a
URI (hdfs://, s3a://, abfss://); models.storage reads and writes the files at these locations.
"""
from __future__ import annotations

import datetime as dt
import uuid

from jobs.core.config import Config, join_path

KINDS = {"models": "models", "reports": "reports", "checkpoints": "_checkpoints", "scratch": "_scratch"}


def location(cfg: Config, kind: str, *parts: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of location {kind!r}: one of {', '.join(KINDS)}")
    return join_path(cfg.warehouse, KINDS[kind], *parts)


def new_artifact(cfg: Config, model: str, day: dt.date) -> str:
    """A fresh folder for one training run's model files, `<warehouse>/models/<model>/<D>/<run>`: a run
    never writes over a published model; its gold.models row publishes it once every file is there."""
    run = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    return location(cfg, "models", model, day.isoformat(), run)
