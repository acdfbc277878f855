"""Configuration: one YAML file per environment, validated against typed sections before Spark starts.

Every key is declared here once, as a field of a frozen dataclass made by `key(default, help=...,
gt=/ge=/le=/lt=, choices=, pattern=)`: its type, default, range and help text sit together, so adding
a key is one line and its checks come with it. Loading a file checks it against the declarations:
an unknown key, a wrong type, a value out of range or a missing required value raises ConfigError
with one line naming the file and the dotted key (exit code 2). Command-line overrides
(`--set section.key=value`) are parsed as YAML scalars and validated the same way. Keys that moved
keep working for one release (RENAMED), with a warning. `python -m jobs.core.config` prints the
README's table of keys from these declarations.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobs.core.errors import ConfigError
from udfs.formats import LISTEN_FORMATS

log = logging.getLogger("setlist.config")

DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
TRAIN_BACKENDS = ("horovod", "torch-distributor")

# Old dotted key -> new one. Both work for this release; the old one logs a deprecation warning.
RENAMED = {
    "evaluate.recent_tracks": "recommend.recent_tracks",
    "evaluate.neighbours": "recommend.neighbours",
}


def key(default: Any = dataclasses.MISSING, *, help: str, gt: float | None = None, ge: float | None = None,
        lt: float | None = None, le: float | None = None, choices: tuple | None = None,
        pattern: str | None = None) -> Any:
    """A config key: its default, help text and the range its values (or list items) must lie in."""
    meta = {"help": help, "gt": gt, "ge": ge, "lt": lt, "le": le, "choices": choices, "pattern": pattern}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": True})


@dataclass(frozen=True)
class SparkConf:
    master: str = key("local[*]", help="`local[N]`, `yarn`, `k8s://...`, `spark://host:port`")
    app_name: str = key("setlist", help="application name (`-JOB` is appended by submit.sh)")
    packages: list[str] = key([DELTA_PACKAGE], help="Maven coordinates resolved once and cached")
    conf: dict[str, Any] = key({}, help="any Spark setting, passed in submit.sh's properties file")
    event_log: bool = key(True, help="Spark event logs under `<warehouse>/_spark_events` (for the history server)")
    class_archive: bool = key(True, help="the driver maps the class archive `make setup` built (JDK AppCDS in "
                              "`$SETLIST_CACHE/cds`, about 10 s less per start); false: it loads every class from the jars")


@dataclass(frozen=True)
class GenerateConf:
    seed: int = key(42, help="everything generated is a function of the seed")
    users: int = key(200, gt=0, help="synthetic users")
    tracks: int = key(2000, gt=0, help="synthetic tracks")
    artists: int = key(200, gt=0, help="synthetic artists (at most `tracks`)")
    genres: int = key(8, gt=0, help="synthetic genres (at most `artists`)")
    events: int = key(20000, gt=0, help="approximate number of records over all days")
    days: int = key(3, gt=0, help="days generated, ending at `--date` or `end_date`")
    end_date: dt.date = key(dt.date(2026, 1, 3), help="last day generated")
    dirty_fraction: float = key(0.02, ge=0, le=1, help="share of records given a defect (and as many a harmless mess)")
    listenbrainz_fraction: float = key(0.5, ge=0, le=1, help="share of users logging JSON lines (the rest TSV)")
    mbid_fraction: float = key(0.7, ge=0, le=1, help="share of tracks with a recording id")
    sequential_prob: float = key(0.5, ge=0, le=1, help="chance the next play is the current track's planted successor")
    repeat_prob: float = key(0.25, ge=0, le=1, help="chance the next play is one of the user's favourites")
    artist_loyalty: float = key(0.4, ge=0, le=1,
                                help="chance a freshly chosen track is by one of the user's loved artists")
    active_day_prob: float = key(0.6, gt=0, le=1, help="chance a user listens on a given day")
    popularity_exponent: float = key(1.1, help="Zipf exponent of popularity within a genre")
    files_per_day: int = key(2, gt=0, help="raw files per format and day")


@dataclass(frozen=True)
class IngestConf:
    formats: list[str] = key(list(LISTEN_FORMATS), choices=LISTEN_FORMATS,
                             help="listen formats `ingest` looks for when `--format` is not given")
    layout: str = key("{format}/date={date}", pattern=r"[^{}]*(\{(format|date)\}[^{}]*)+",
                      help="a date's raw folder under raw_path: `{format}` and `{date}` (YYYY-MM-DD) are filled in; "
                           "without `{format}` one listen format only, and no feedback")


@dataclass(frozen=True)
class CleanConf:
    session_gap_minutes: int = key(30, gt=0, help="a gap longer than this starts a new session")
    ts_floor: dt.date = key(dt.date(2002, 1, 1), help="plays before it are quarantined (clock errors, epoch zero)")
    unicode_form: str = key("NFKC", choices=("NFC", "NFKC"), help="Unicode normal form of names")


@dataclass(frozen=True)
class AlertsConf:
    trailing_days: int = key(7, gt=0, help="a day's volume and new keys are compared with the median of this many "
                                          "cleaned days before it")
    min_history: int = key(3, gt=0, help="cleaned days needed before the comparisons with the past are made")
    quarantine_rate: list[float] = key([0.05, 0.5], ge=0, help="[warn, fail]: share of the day's raw records quarantined")
    volume_drop: list[float] = key([0.6, 0.95], ge=0, help="[warn, fail]: 1 - the day's rows / the trailing median")
    volume_rise: list[float] = key([4.0, 50.0], ge=0, help="[warn, fail]: the day's rows / the trailing median")
    new_users_ratio: list[float] = key([10.0, 200.0], ge=0, help="[warn, fail]: new users / (trailing median + 1)")
    new_tracks_ratio: list[float] = key([10.0, 200.0], ge=0, help="[warn, fail]: new tracks / (trailing median + 1)")
    missing_recording_id_rise: list[float] = key([0.2, 0.6], ge=0,
                                                 help="[warn, fail]: rise of the share of plays without a recording "
                                                      "id over the trailing median")

    def thresholds(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if isinstance(getattr(self, f.name),
                                                                                              list)}


@dataclass(frozen=True)
class EmbedConf:
    engine: str = key("auto", choices=("auto", "gensim", "spark"),
                      help="Word2Vec implementation; auto: gensim up to `spark_above` plays, MLlib above")
    spark_above: int = key(3_000_000, gt=0, help="`engine: auto` trains MLlib's distributed Word2Vec above this many "
                                                 "plays (gensim streams every session through the driver)")
    spark_partitions: int = key(0, ge=0, help="MLlib Word2Vec's partitions, trained in parallel and averaged after "
                                              "every epoch (0: Spark's default parallelism; MLlib's own default, 1, "
                                              "trains in one task)")
    vector_size: int = key(32, gt=0, help="Word2Vec vector size")
    window: int = key(5, gt=0, help="Word2Vec context window")
    min_count: int = key(3, gt=0, help="tracks with fewer plays are left out (and counted)")
    negative: int = key(5, gt=0, help="negative samples (gensim; MLlib uses hierarchical softmax)")
    epochs: int = key(5, gt=0, help="Word2Vec epochs")
    learning_rate: float = key(0.025, gt=0, help="Word2Vec learning rate")
    seed: int = key(7, help="Word2Vec seed")
    history_days: int = key(90, ge=0, help="days of plays up to D that train the embeddings (0: all)")


@dataclass(frozen=True)
class ClusterConf:
    algorithm: str = key("kmeans", choices=("kmeans", "bisecting"), help="clustering algorithm, tracks and users")
    k: int = key(0, ge=0, help="clusters of tracks; 0 chooses k in [k_min, k_max] (k_criterion)")
    k_criterion: str = key("elbow", choices=("elbow", "silhouette"),
                           help="how k is chosen: the elbow of the clustering cost, or the best (cosine) silhouette")
    select_sample: int = key(20000, ge=0, help="each k is tried on at most N sampled tracks (0: all); the chosen k "
                                               "is fitted on all")
    k_min: int = key(4, gt=0, help="smallest k tried when `k` is 0")
    k_max: int = key(24, gt=0, help="largest k tried when `k` is 0")
    k_step: int = key(2, gt=0, help="k tried from k_min to k_max in steps of N")
    max_iter: int = key(30, gt=0, help="iterations of (bisecting) k-means")
    seed: int = key(7, help="clustering seed")
    label_artists: int = key(3, gt=0, help="artists in a cluster's label")
    segments: int = key(8, gt=0, help="user taste segments")
    recency_half_life_days: float = key(30.0, ge=0, help="a play's weight in a taste halves every N days (0: no decay)")
    history_days: int = key(90, ge=0, help="days of plays up to D behind labels and tastes (0: all)")


@dataclass(frozen=True)
class AlsConf:
    rank: int = key(32, gt=0, help="ALS rank")
    reg_param: float = key(0.05, ge=0, help="ALS regularisation")
    alpha: float = key(10.0, gt=0, help="ALS confidence scale")
    max_iter: int = key(10, gt=0, help="ALS iterations")
    confidence: str = key("log", choices=("log", "linear"), help="confidence `1 + log1p(plays)` or `plays`")
    recency_half_life_days: float = key(0.0, ge=0, help="decay of confidence with the age of the last play (0: off)")
    checkpoint_interval: int = key(5, gt=0, help="checkpoint every N iterations (stack depth)")
    blocks: int = key(0, ge=0, help="user and item blocks of ALS (0: one per task slot)")
    history_days: int = key(90, ge=0, help="days of plays up to D that train ALS (0: all)")
    seed: int = key(7, help="ALS seed")
    grid_ranks: list[int] = key([16, 32, 64], gt=0, help="ranks searched on the validation window (empty: `rank`)")
    grid_reg_params: list[float] = key([0.01, 0.1, 1.0], ge=0, help="regularisations searched (empty: `reg_param`)")
    grid_alphas: list[float] = key([1.0, 10.0, 40.0], gt=0, help="alphas searched (empty: `alpha`)")
    grid_confidences: list[str] = key(["log", "linear"], choices=("log", "linear"),
                                      help="confidence transforms searched (empty: `confidence`)")
    tune_minutes: float = key(1.0, ge=0, help="time budget of a search (the first set is always tried)")
    tune_every_days: int = key(7, gt=0, help="search every N nights; in between the last choice is retrained")
    search_parallelism: int = key(2, gt=0, help="parameter sets fitted at once in a search (driver threads)")
    validation_days: int = key(1, gt=0, help="the grid's validation window: the last N days up to D")
    grid_metric: str = key("ndcg", choices=("ndcg", "recall", "map", "hit_rate"),
                           help="the grid's metric at `evaluate.k` (never RMSE)")


@dataclass(frozen=True)
class EvaluateConf:
    k: int = key(10, gt=0, help="K of every ranking metric (evaluate, the ALS grid, next-track)")
    test_days: int = key(1, gt=0, help="the test window: the last N days up to D")


@dataclass(frozen=True)
class TrainConf:
    backend: str = key("horovod", choices=TRAIN_BACKENDS, help="distributed backend (`--backend` overrides)")
    world_size: int = key(2, gt=0, help="ranks, one Spark task each")
    window: int = key(10, gt=0, help="tracks before the target in an example (0-padded on the left)")
    embed_dim: int = key(32, gt=0, help="LSTM track embedding size")
    hidden: int = key(64, gt=0, help="LSTM hidden size")
    layers: int = key(1, gt=0, help="LSTM layers")
    dropout: float = key(0.0, ge=0, lt=1, help="LSTM dropout between layers")
    loss: str = key("auto", choices=("auto", "full", "sampled"),
                    help="softmax over the vocabulary, or sampled; auto: sampled above `sampled_above` tokens")
    sampled_above: int = key(20000, gt=0, help="`loss: auto` samples the softmax when the vocabulary is larger")
    num_sampled: int = key(200, gt=0, help="negatives of the sampled softmax")
    min_plays: int = key(2, gt=0, help="tracks with fewer plays in the training window share one token (the "
                                       "vocabulary keeps the rest)")
    epochs: int = key(4, gt=0, help="training epochs")
    batch_size: int = key(256, gt=0, help="examples per step and rank")
    learning_rate: float = key(0.002, gt=0, help="learning rate per rank (x world size)")
    init_from_embeddings: bool = key(True, help="start the track embedding from Word2Vec's vectors")
    history_days: int = key(90, ge=0, help="days of plays up to D behind the examples (0: all)")
    validation_days: int = key(1, gt=0, help="examples of the last N days validate")
    sequence_files: int = key(8, gt=0, help="Parquet files of the examples (at least `world_size`)")
    eval_examples: int = key(20000, gt=0, help="validation examples scored for the metrics")
    export_onnx: bool = key(True, help="also export ONNX (checked with onnxruntime)")
    driver_below_examples: int = key(50_000, ge=0, help="a night with fewer training examples trains in the driver "
                                                        "process (the same training as world_size ranks: one step of "
                                                        "world_size x batch_size examples) instead of launching the "
                                                        "ranks (0: always distributed; `--backend` forces the ranks)")
    timeout_minutes: float = key(240.0, gt=0, help="a distributed attempt running longer is cancelled and "
                                                   "tried once more (resuming from its checkpoint)")
    seed: int = key(7, help="training seed")


@dataclass(frozen=True)
class RankConf:
    train_days: int = key(7, gt=0, help="nights of candidates, labelled by the next day's plays, the ranker learns "
                                        "from (the latest of them validates)")
    n_estimators: int = key(200, gt=0, help="boosting rounds of the ranker (XGBoost, rank:ndcg)")
    max_depth: int = key(2, gt=0, help="depth of the ranker's trees (2 beat both 1 and 3 on 17 of 28 validation "
                                       "nights of four datasets: README, \"The ranker's depth\")")
    learning_rate: float = key(0.1, gt=0, help="the ranker's learning rate (eta)")
    min_child_weight: float = key(1.0, ge=0, help="the ranker's minimum hessian in a leaf")
    subsample: float = key(0.8, gt=0, le=1, help="share of rows each of the ranker's trees sees")
    seed: int = key(7, help="the ranker's seed")
    workers: int = key(2, gt=0, help="XGBoost workers (Spark tasks) that train the ranker")
    query: str = key("user", choices=("user", "night"),
                     help="what one ranking query of the ranker holds: a user's candidates of a night (user), or "
                          "every user's candidates of a night (night: one order across users)")
    driver_below_rows: int = key(200_000, ge=0, help="a training set of fewer candidates is fitted by XGBoost in the "
                                                     "driver (one process, a thread per task slot) instead of by "
                                                     "rank.workers Spark tasks (0: always Spark)")
    min_gain: float = key(0.0, ge=0, help="a challenger (ranker, blend) replaces most_played only if its validation "
                                          "NDCG is higher by this share (0.02: 2%)")
    confidence: float = key(0.95, ge=0, le=1, help="... and only if it wins in this share of bootstrap resamples of the "
                                                   "validation night's users (paired)")
    record_nights: int = key(3, gt=0, help="... and only if it also beats most_played over the last N nights, "
                                           "user-weighted: the validation night and the evaluate stage's scores "
                                           "of the N-1 nights before it (1: the validation night alone)")
    default_config: str = key("most_played", choices=("most_played", "blend"),
                              help="what a night serves before any configuration could be validated")


@dataclass(frozen=True)
class RecommendConf:
    k: int = key(30, gt=0, help="tracks per user")
    candidates_per_source: int = key(100, gt=0, help="candidates taken from each source")
    # Blend weights: a candidate's score is the sum over sources of weight x its signal there (see
    # models.blend). history, als, item2vec and popularity were chosen on validation splits of
    # generated data (bench/quality.py --tune-blend); lstm and segment are not measured by that split.
    weight_history: float = key(1.0, ge=0, help="blend weight of the user's own plays (ln plays)")
    weight_als: float = key(2.0, ge=0, help="blend weight of ALS (share of the user's best)")
    weight_lstm: float = key(1.0, ge=0, help="blend weight of the LSTM's next tracks")
    weight_item2vec: float = key(0.05, ge=0, help="blend weight of item2vec neighbours")
    weight_segment: float = key(0.3, ge=0, help="blend weight of the taste segment's most played")
    weight_popularity: float = key(1.0, ge=0, help="blend weight of global popularity")
    recent_tracks: int = key(20, gt=0, help="item2vec: the user's last N distinct tracks")
    neighbours: int = key(50, gt=0, help="item2vec: neighbours per recent track")
    history_days: int = key(90, ge=0, help="days of plays up to D behind the candidates (0: all)")
    min_history: int = key(5, ge=0, help="plays below which a user is cold start")
    exclude_played_days: int = key(0, ge=0, help="drop tracks played in the last N days (0: off)")
    max_per_artist: int = key(0, ge=0, help="most tracks of one artist in a list (relaxed only to fill K; 0: no cap)")
    mmr_lambda: float = key(1.0, ge=0, le=1, help="MMR trade-off of score against repeating an artist (1: score only)")
    like_boost: float = key(0.5, ge=0, help="a liked track's score x (1 + like_boost)")
    skip_penalty: float = key(0.5, ge=0, le=1, help="a lately skipped track's score x (1 - skip_penalty)")
    skip_days: int = key(7, ge=0, help="a skip counts for N days")

    def weights(self) -> dict[str, float]:
        """{source: weight} of the blend, from the weight_<source> keys."""
        return {f.name[len("weight_"):]: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.startswith("weight_")}


@dataclass(frozen=True)
class PublishConf:
    max_changed_share: float = key(0.95, ge=0, le=1, help="the gate refuses a night where more users than this "
                                                           "share got a list with nothing in common with the previous")
    max_source_shift: float = key(0.95, ge=0, le=1, help="the gate refuses a night whose source mix moved more than "
                                                         "this (total variation distance) from the previous night's")


@dataclass(frozen=True)
class NightlyConf:
    embed_every_days: int = key(1, gt=0, help="retrain embeddings every N days (reuse the latest in between)")
    cluster_every_days: int = key(1, gt=0, help="recluster every N days")
    als_every_days: int = key(1, gt=0, help="retrain ALS every N days")
    train_every_days: int = key(7, gt=0, help="retrain the LSTM every N days")
    maintain_every_days: int = key(7, gt=0, help="table upkeep (maintain) every N days from the first night")
    interpreted_below_rows: int = key(250000, ge=0, help="while the plays so far (and this night's rows read, and its raw files' bytes / 64) are under N, "
                                      "stages (in a nightly, or run on their own with --date) run Spark's interpreted expressions without whole-stage code generation or "
                                      "adaptive re-planning (recommend: only the re-planning off), with one shuffle partition "
                                      "per task slot: compiling costs more than a small night's rows; 0: never")


@dataclass(frozen=True)
class BackfillConf:
    model_days: int = key(9, ge=0, help="backfill runs the model stages for the last N dates of its range (the rest "
                                        "are ingested and cleaned only; 0: none); rank.train_days + 2 gives the ranker "
                                        "of the last date its full training window")


@dataclass(frozen=True)
class MaintainConf:
    retain_hours: float = key(168.0, ge=0, help="VACUUM keeps files a reader of the last N hours may need "
                                                "(Delta's safety default: 168)")
    allow_short_retention: bool = key(False, help="allow retain_hours below 168 (readers older than that fail)")
    scratch_days: int = key(7, ge=0, help="scratch and checkpoints of run dates older than N days are removed")
    vacuum_mode: str = key("lite", choices=("lite", "full"),
                           help="VACUUM from the log (lite, seconds) or listing every folder (full: also files no "
                                "commit referenced, left by killed writers)")
    tables_at_once: int = key(4, gt=0, help="tables whose upkeep (maintain) or erasure (forget-user) runs at the "
                                            "same time, from driver threads")


@dataclass(frozen=True)
class ErasureConf:
    salt: str = key("", help="salt of the user hashes in silver.erasures (e.g. `${SETLIST_ERASURE_SALT}`); empty: a "
                             "random salt kept at `<warehouse>/_erasure/salt`, created with the first erasure")


@dataclass(frozen=True)
class TrackingConf:
    enabled: bool = key(True, help="log every trained model to MLflow (besides its gold.models row)")
    uri: str = key("", help="MLflow tracking URI (a team server); empty: `sqlite:///<warehouse>/_mlflow/mlflow.db` "
                            "(a local warehouse only)")
    experiment: str = key("setlist", help="MLflow experiment of the runs")


@dataclass(frozen=True)
class LeaseConf:
    enabled: bool = key(True, help="one writing job at a time per warehouse (jobs.core.lease); needs a local "
                                   "or shared POSIX warehouse")
    wait_minutes: float = key(60.0, ge=0, help="how long a run waits for the lease before exiting with code 4")


@dataclass(frozen=True)
class CatalogConf:
    database: str = key("", pattern=r"^[A-Za-z0-9_]*$",
                        help="register the gold tables as `<database>.<table>` after each nightly (empty: no)")


@dataclass(frozen=True)
class Config:
    warehouse: str = key(help="root of the Delta tables and of every file the jobs write")
    raw_path: str = key(help="root of the raw logs: `<raw_path>/<ingest.layout>/`, by default `<raw_path>/<format>/date=<D>/`")
    log_level: str = key("INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="setlist's log level")
    log_format: str = key("text", choices=("text", "json"), help="setlist's log lines: text, or one JSON object each")
    file_umask: str = key("027", pattern=r"^0?[0-7]{3}$",
                          help="umask of every file and folder the jobs write (027: not world-readable)")
    spark: SparkConf = section(SparkConf)
    generate: GenerateConf = section(GenerateConf)
    ingest: IngestConf = section(IngestConf)
    clean: CleanConf = section(CleanConf)
    alerts: AlertsConf = section(AlertsConf)
    embed: EmbedConf = section(EmbedConf)
    cluster: ClusterConf = section(ClusterConf)
    als: AlsConf = section(AlsConf)
    evaluate: EvaluateConf = section(EvaluateConf)
    train: TrainConf = section(TrainConf)
    rank: RankConf = section(RankConf)
    recommend: RecommendConf = section(RecommendConf)
    publish: PublishConf = section(PublishConf)
    nightly: NightlyConf = section(NightlyConf)
    backfill: BackfillConf = section(BackfillConf)
    catalog: CatalogConf = section(CatalogConf)
    lease: LeaseConf = section(LeaseConf)
    erasure: ErasureConf = section(ErasureConf)
    tracking: TrackingConf = section(TrackingConf)
    maintain: MaintainConf = section(MaintainConf)
    # Where the config came from, for messages; not a key of the file.
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})


PATH_KEYS = ("warehouse", "raw_path")


def join_path(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    if tp is dt.date:
        return "date (YYYY-MM-DD)"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key_: str, source: str) -> Any:
    """Check one value against its declared type; return it in the declared form."""
    def bad() -> ConfigError:
        return ConfigError(f"{source}: {key_}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key_}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        for k, v in value.items():
            if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
                raise ConfigError(f"{source}: {key_}.{k}: expected a scalar value, got {v!r}")
            _check_text(k, f"{key_}.{k}", source)
            _check_text(str(v), f"{key_}.{k}", source)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float) if tp is float else int):
            raise bad()
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        _check_text(value, key_, source)
        return value
    if tp is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise bad() from None
        raise bad()
    raise TypeError(f"unsupported config type {tp!r} for {key_}")  # a declaration bug, not user input


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_text(value: str, key_: str, source: str) -> None:
    """No control characters: a newline in a value could inject an argument into spark-submit."""
    found = _CONTROL.search(value)
    if found:
        raise ConfigError(f"{source}: {key_}: control character {found.group()!r} not allowed in a value")


def _range_error(value: Any, meta: dict) -> str | None:
    """What is wrong with one scalar value against its declared range, or None."""
    choices = meta.get("choices")
    if choices and value not in choices:
        return f"{value!r} is not one of {', '.join(choices)}"
    pattern = meta.get("pattern")
    if pattern and not re.fullmatch(pattern, value):
        return f"{value!r} does not match {pattern}"
    gt, ge, lt, le = (meta.get(b) for b in ("gt", "ge", "lt", "le"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if ge == 0 and le == 1 and not 0 <= value <= 1:
        return f"must be between 0 and 1, got {value}"
    if gt == 0 and le == 1 and not 0 < value <= 1:
        return f"must be in (0, 1], got {value}"
    if ge == 0 and lt == 1 and not 0 <= value < 1:
        return f"must be in [0, 1), got {value}"
    if gt == 0 and value <= 0:
        return f"must be positive, got {value}"
    if ge == 0 and value < 0:
        return f"must not be negative, got {value}"
    return None


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or '<top level>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for name in data:
        if name not in fields:
            raise ConfigError(f"{source}: {prefix}{name}: unknown key (known here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key_, tp = f"{prefix}{name}", hints[name]
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: {key_}: required value is missing")
            continue
        value = data[name]
        if _is_section(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f"{key_}.", source)
            continue
        if value is None:
            raise ConfigError(f"{source}: {key_}: expected {_type_name(tp)}, got null")
        value = _coerce(value, tp, key_, source)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            problem = _range_error(item, f.metadata)
            if problem:
                where = f"{key_}[{i}]" if isinstance(value, list) else key_
                raise ConfigError(f"{source}: {where}: {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def _check_relations(cfg: Config) -> None:
    """Rules between keys, which no single declaration can say."""
    src, g, c, t = cfg.source, cfg.generate, cfg.cluster, cfg.train
    if c.k == 1 or (c.k == 0 and not 2 <= c.k_min <= c.k_max):
        raise ConfigError(f"{src}: cluster.k: k must be 0 (choose in k_min..k_max, 2 <= k_min <= k_max) or >= 2; "
                          f"got k={c.k}, k_min={c.k_min}, k_max={c.k_max}")
    if t.sequence_files < t.world_size:
        raise ConfigError(f"{src}: train.sequence_files: {t.sequence_files} files cannot give each of "
                          f"train.world_size={t.world_size} ranks a shard")
    if g.artists > g.tracks:
        raise ConfigError(f"{src}: generate.artists: {g.artists} artists need at least as many tracks "
                          f"(generate.tracks={g.tracks})")
    if cfg.maintain.retain_hours < 168 and not cfg.maintain.allow_short_retention:
        raise ConfigError(f"{src}: maintain.retain_hours: {cfg.maintain.retain_hours} is below Delta's safety "
                          f"default of 168 hours: set maintain.allow_short_retention: true to allow it")
    for name, bounds in cfg.alerts.thresholds().items():
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise ConfigError(f"{src}: alerts.{name}: expected [warn, fail] with warn <= fail, got {bounds}")
    layout = cfg.ingest.layout
    if "{date}" not in layout:
        raise ConfigError(f"{src}: ingest.layout: {layout!r} must contain {{date}}")
    if "{format}" not in layout and len(cfg.ingest.formats) != 1:
        raise ConfigError(f"{src}: ingest.layout: {layout!r} has no {{format}}, so ingest.formats must name exactly "
                          f"one format, got {cfg.ingest.formats}")
    if g.genres > g.artists:
        raise ConfigError(f"{src}: generate.genres: {g.genres} genres need at least as many artists "
                          f"(generate.artists={g.artists})")


def _resolve_path(value: str, key_: str, source: str) -> str:
    """A path key expanded (~, ${VAR}) and made absolute; a URI is kept as it is."""
    expanded = os.path.expandvars(os.path.expanduser(value))
    unset = re.search(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", expanded)
    if unset:
        raise ConfigError(f"{source}: {key_}: {unset.group()} is not set in the environment")
    if not expanded.strip():
        raise ConfigError(f"{source}: {key_}: must not be empty")
    if "://" in expanded or expanded.startswith("/"):
        return expanded
    return str(Path(expanded).resolve())


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: dates stay text and are checked here, with the key named."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. clean.session_gap_minutes=45")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not name:
        raise ConfigError(f"--set {text}: empty key")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return name.split("."), value


def _apply_override(data: dict, path: list[str], value: Any) -> None:
    """Set one dotted key; inside a free-form mapping (spark.conf) the rest of the path is one key."""
    node, section_ = data, Config
    for i, part in enumerate(path):
        declared = typing.get_type_hints(section_).get(part) if _is_section(section_) else None
        if i == len(path) - 1 or declared is None:
            node[part] = value if i == len(path) - 1 else {".".join(path[i + 1:]): value}
            return  # an unknown key is reported by validation, with the file named
        if typing.get_origin(declared) is dict:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node[part][".".join(path[i + 1:])] = value
            return
        if not _is_section(declared):
            raise ConfigError(f"--set {'.'.join(path)}: {part} is a value, not a section")
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node, section_ = node[part], declared


def _apply_renames(data: dict, source: str) -> None:
    """Move values given under an old key name to the new one (which wins if both are set)."""
    for old, new in RENAMED.items():
        old_section, old_name = old.split(".")
        given = data.get(old_section)
        if isinstance(given, dict) and old_name in given:
            value = given.pop(old_name)
            log.warning("%s: %s is deprecated, use %s (the old name goes in the next release)", source, old, new)
            new_section, new_name = new.split(".")
            target = data.setdefault(new_section, {})
            if isinstance(target, dict):
                target.setdefault(new_name, value)


def _validated(data: dict, source: str, overrides: list[str] | tuple[str, ...]) -> Config:
    given = {}  # dotted key -> the --set item that set it
    for item in overrides:
        path, value = parse_override(item)
        _apply_override(data, path, value)
        given[".".join(path)] = item
    _apply_renames(data, source)
    try:
        cfg = _build(Config, data, "", source)
        cfg = dataclasses.replace(cfg, source=source,
                                  **{k: _resolve_path(getattr(cfg, k), k, source) for k in PATH_KEYS})
        _check_relations(cfg)
    except ConfigError as exc:
        raise _blamed_on_override(exc, source, given) from None
    return cfg


def _blamed_on_override(exc: ConfigError, source: str, given: dict[str, str]) -> ConfigError:
    """An error about a key (or a section) that a --set item gave names that item, not the file it
    overrode: `--set als.rankk=3: als.rankk: unknown key (...)`. Any other error is returned as it is."""
    text, head = str(exc), f"{source}: "
    if not text.startswith(head):
        return exc
    key_ = re.split(r"[:\[]", text[len(head):], maxsplit=1)[0]
    item = next((item for name, item in given.items() if name == key_ or name.startswith(key_ + ".")), None)
    return exc if item is None else ConfigError(f"--set {item}: {text[len(head):]}")


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config file. Raises ConfigError naming the file and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file does not exist (option --conf)") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: <top level>: expected a mapping of sections")
    return _validated(data, source, overrides)


def with_overrides(cfg: Config, overrides: list[str]) -> Config:
    """A config with more `section.key=value` overrides applied, validated like a loaded one."""
    return _validated(as_dict(cfg), cfg.source, overrides)


def as_dict(cfg: Any) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("internal"):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = as_dict(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, (list, dict)):
            value = type(value)(value)
        out[f.name] = value
    return out


def declared_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, Any, Any, dict]]:
    """(dotted key, type, default, metadata) of every declared key, in declaration order."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        if f.metadata.get("section"):
            out += declared_keys(hints[f.name], f"{prefix}{f.name}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append((f"{prefix}{f.name}", hints[f.name], default, dict(f.metadata)))
    return out


def markdown_table() -> str:
    """The README's table of config keys, from the declarations."""
    def shown(value: Any) -> str:
        if value is dataclasses.MISSING:
            return "required"
        if isinstance(value, dt.date):
            return value.isoformat()
        return repr(value) if isinstance(value, str) else str(value).replace("True", "true").replace("False", "false")

    rows = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    for name, tp, default, meta in declared_keys():
        bounds = [f"{op} {meta[b]}" for b, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
                  if meta.get(b) is not None]
        if meta.get("choices"):
            bounds.append(" / ".join(meta["choices"]))
        rows.append(f"| `{name}` | {_type_name(tp)} | `{shown(default)}` | {', '.join(bounds)} | {meta['help']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
