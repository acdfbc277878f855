"""Every path that is not a table, under the warehouse: one helper for local folders and URIs.

`location(cfg, kind, *parts)`: models (`<warehouse>/models/...`), reports (`<warehouse>/reports/...`),
checkpoints (`<warehouse>/_checkpoints/...`) and scratch (`<warehouse>/_scratch/...`). A URI stays a
URI (hdfs://, s3a://, abfss://); models.storage reads and writes the files at these locations.
"""
from __future__ import annotations

from jobs.core.config import Config, join_path

KINDS = {"models": "models", "reports": "reports", "checkpoints": "_checkpoints", "scratch": "_scratch"}


def location(cfg: Config, kind: str, *parts: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of location {kind!r}: one of {', '.join(KINDS)}")
    return join_path(cfg.warehouse, KINDS[kind], *parts)
