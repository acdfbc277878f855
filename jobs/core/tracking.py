"""Model tracking in MLflow: every trained model's parameters, metrics, input data versions and
files, beside its gold.models row (which stays the registry the pipeline reads).

Runs go to `tracking.uri`, by default a SQLite database under the warehouse
(`sqlite:///<warehouse>/_mlflow/mlflow.db`, MLflow 3's recommended local store; its file store is in
maintenance mode), with artifacts under `<warehouse>/_mlflow/artifacts`; a team server is one
config key away. One experiment (`tracking.experiment`); a run per model and run date, named by the
model's version, tagged with the run date, the model, the gold.models path and the Delta version of
every table it read (`input.<table>`); a model saved in its own folder (ALS, the LSTM, the ranker)
has its files logged as the artifact `model`. Tracking is bookkeeping: a failure is logged and never fails
the stage.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time

from jobs.core.config import Config, join_path

log = logging.getLogger("setlist.tracking")


def tracking_uri(cfg: Config) -> str | None:
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if "://" in cfg.warehouse:  # SQLite needs a local file: set tracking.uri on a cluster
        return None
    folder = join_path(cfg.warehouse, "_mlflow")
    os.makedirs(folder, exist_ok=True)
    return f"sqlite:///{folder}/mlflow.db"


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _is_model_folder(cfg: Config, path: str) -> bool:
    """A saved model's own folder (under <warehouse>/models): its files are the artifact. A model that
    is a table (embeddings, clusters, the lists) is logged by its path and Delta version instead."""
    models = os.path.realpath(join_path(cfg.warehouse, "models"))
    return os.path.commonpath([os.path.realpath(path), models]) == models


def log_model(cfg: Config, day: dt.date, model: str, version: str, params: dict, metrics: dict, path: str,
              inputs: dict[str, int]) -> str | None:
    """Log one trained model; its MLflow run id, or None when tracking is off or failed."""
    if not cfg.tracking.enabled:
        return None
    uri = tracking_uri(cfg)
    if uri is None:
        return None
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(cfg.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            cfg.tracking.experiment, artifact_location=join_path(cfg.warehouse, "_mlflow", "artifacts")
            if not cfg.tracking.uri else None)
        tags = {"run_date": day.isoformat(), "model": model, "version": version, "setlist.path": path or ""} | {
            f"input.{table}": str(v) for table, v in inputs.items()}
        run = client.create_run(experiment_id, run_name=version, tags=tags)
        flat_params, flat_metrics = {}, {}
        _flat("", params, flat_params)
        _flat("", metrics, flat_metrics)
        now_ms = int(time.time() * 1000)
        numbers = {k: float(v) for k, v in flat_metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        texts = {k: v for k, v in flat_metrics.items() if k not in numbers}
        client.log_batch(run.info.run_id,
                         params=[Param(k.replace("@", "_at_"), str(v)[:6000]) for k, v in flat_params.items()],
                         metrics=[Metric(k.replace("@", "_at_"), v, now_ms, 0) for k, v in numbers.items()],
                         tags=[RunTag(f"result.{k}", str(v)[:5000]) for k, v in texts.items()])
        if path and "://" not in path and os.path.isdir(path) and _is_model_folder(cfg, path):
            client.log_artifacts(run.info.run_id, path, "model")
        client.set_terminated(run.info.run_id)
        return run.info.run_id
    except Exception:  # noqa: BLE001 - bookkeeping never fails a stage
        log.exception("could not log %s %s to MLflow at %s", model, version, uri)
        return None
