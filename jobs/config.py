"""Configuration: one YAML file per environment, validated against typed sections before Spark starts.

Every key the project reads is declared here once, as a field of a frozen dataclass with its type
and default. Loading a file checks it against these declarations: an unknown key, a value of the
wrong type or a missing required value raises ConfigError with one line that names the file and
the dotted key. Command-line overrides (`--set section.key=value`) are parsed as YAML scalars and
validated the same way.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobs.errors import ConfigError

DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
INPUT_FORMATS = ("lastfm-tsv", "listenbrainz-jsonl")


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: dates stay text and are checked here, with the key named."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _choices(*values: str) -> dict:
    return {"choices": values}


@dataclass(frozen=True)
class SparkConf:
    master: str = "local[*]"
    app_name: str = "setlist"
    # Maven coordinates resolved once (Ivy) into the setlist cache; later runs use the cached jars.
    packages: list[str] = field(default_factory=lambda: [DELTA_PACKAGE])
    # Passed verbatim as --conf key=value to spark-submit and to the session builder.
    conf: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateConf:
    seed: int = 42
    users: int = 200
    tracks: int = 2000
    artists: int = 200
    genres: int = 8
    events: int = 20000
    days: int = 3
    end_date: dt.date = dt.date(2026, 1, 3)
    # Share of rows made dirty, spread over every kind of defect the cleaner quarantines or drops.
    dirty_fraction: float = 0.02
    # Share of users whose client logs in ListenBrainz JSON lines (the rest log Last.fm TSV).
    listenbrainz_fraction: float = 0.5
    # Share of tracks that carry a MusicBrainz recording id.
    mbid_fraction: float = 0.7
    # Probability that the next track in a session follows the current one's planted successor.
    sequential_prob: float = 0.5
    # Probability that a play is one of the user's own favourites (repeat listening).
    repeat_prob: float = 0.25
    # Probability that a freshly chosen track is by one of the user's loved artists (artist loyalty).
    artist_loyalty: float = 0.4
    # Probability that a user is active on a given day.
    active_day_prob: float = 0.6
    # Zipf exponent of track popularity within a genre.
    popularity_exponent: float = 1.1
    files_per_day: int = 2


@dataclass(frozen=True)
class IngestConf:
    formats: list[str] = field(default_factory=lambda: list(INPUT_FORMATS))


@dataclass(frozen=True)
class CleanConf:
    session_gap_minutes: int = 30
    # Plays stamped before this date are quarantined (clock errors, epoch zero).
    ts_floor: dt.date = dt.date(2002, 1, 1)
    unicode_form: str = field(default="NFKC", metadata=_choices("NFC", "NFKC"))


@dataclass(frozen=True)
class EmbedConf:
    engine: str = field(default="gensim", metadata=_choices("gensim", "spark"))
    vector_size: int = 32
    window: int = 5
    # Tracks played fewer times than this in the history are left out (and counted).
    min_count: int = 3
    negative: int = 5
    epochs: int = 5
    learning_rate: float = 0.025
    seed: int = 7
    # Plays of the last N days up to the run date train the model; 0 means all history.
    history_days: int = 90


@dataclass(frozen=True)
class ClusterConf:
    algorithm: str = field(default="kmeans", metadata=_choices("kmeans", "bisecting"))
    # 0: choose k in [k_min, k_max] by silhouette (ClusteringEvaluator).
    k: int = 0
    k_min: int = 4
    k_max: int = 12
    max_iter: int = 30
    seed: int = 7
    label_artists: int = 3
    # Number of user taste segments.
    segments: int = 8
    # Weight of a play in a user's taste halves every N days back from the run date; 0: no decay.
    recency_half_life_days: float = 30.0


@dataclass(frozen=True)
class AlsConf:
    rank: int = 32
    reg_param: float = 0.05
    alpha: float = 10.0
    max_iter: int = 10
    # Confidence from play counts: log (1 + log1p(count)) or linear (count).
    confidence: str = field(default="log", metadata=_choices("log", "linear"))
    recency_half_life_days: float = 0.0
    checkpoint_interval: int = 5
    history_days: int = 90
    seed: int = 7
    # Grid search: when any list is non-empty, every combination (missing lists take the single value
    # above) is trained on plays before a validation window of validation_days and scored by
    # grid_metric@evaluate.k on it; the best is retrained on everything.
    grid_ranks: list[int] = field(default_factory=list)
    grid_reg_params: list[float] = field(default_factory=list)
    grid_alphas: list[float] = field(default_factory=list)
    validation_days: int = 1
    grid_metric: str = field(default="ndcg", metadata=_choices("ndcg", "recall", "map", "hit_rate"))


@dataclass(frozen=True)
class EvaluateConf:
    k: int = 10
    # The last test_days days up to the run date are the test window; plays before it train.
    test_days: int = 1
    # item2vec baseline: neighbours of the user's last N distinct tracks.
    recent_tracks: int = 20
    neighbours: int = 50


@dataclass(frozen=True)
class TrainConf:
    backend: str = field(default="horovod", metadata=_choices("horovod", "torch-distributor"))
    # Ranks (one Spark task each); each needs a free task slot on the cluster.
    world_size: int = 2
    # Tracks before the target in one training example (shorter histories are left-padded with 0).
    window: int = 10
    embed_dim: int = 32
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    # full softmax, or sampled softmax with num_sampled negatives (large catalogues).
    loss: str = field(default="full", metadata=_choices("full", "sampled"))
    num_sampled: int = 200
    epochs: int = 4
    batch_size: int = 256
    # Per rank; the effective rate is learning_rate * world_size.
    learning_rate: float = 0.002
    # Initialise the track embedding from the run date's Word2Vec vectors when their size matches.
    init_from_embeddings: bool = True
    history_days: int = 90
    # Examples whose target was played in the last N days validate; earlier ones train.
    validation_days: int = 1
    # Parquet files the training examples are written in (at least world_size, for the shards).
    sequence_files: int = 8
    # Validation examples scored for the report (a sample, spread over the executors).
    eval_examples: int = 20000
    export_onnx: bool = True
    # A distributed attempt that has not finished after this long is cancelled and tried once more.
    timeout_minutes: float = 240.0
    seed: int = 7


@dataclass(frozen=True)
class RecommendConf:
    k: int = 30
    # Candidates taken from each source per user before blending.
    candidates_per_source: int = 100
    # Blend weights: a candidate's score is the sum over sources of weight x its signal there:
    # ln(plays) for history, for the other sources its score over the user's best score in that
    # source (1 for the source's first track). history, als, item2vec and popularity were chosen on
    # validation splits of generated data (bench/quality.py --tune-blend, README "Measured quality");
    # lstm and segment are not measured by that split.
    weight_als: float = 2.0
    weight_lstm: float = 1.0
    weight_item2vec: float = 0.05
    weight_segment: float = 0.3
    weight_popularity: float = 1.0
    # The user's own most played tracks (repeat listening: the strongest single signal on music data).
    weight_history: float = 1.0
    # Users with fewer plays than this get segment- and popularity-based lists (cold start).
    min_history: int = 5
    # Drop tracks the user played in the last N days (0: keep them; repeat listening is normal).
    exclude_played_days: int = 0
    max_per_artist: int = 3
    # Feedback: a liked track's score is multiplied by (1 + like_boost); a track skipped in the last
    # skip_days days by (1 - skip_penalty); a disliked track is never recommended to that user again.
    like_boost: float = 0.5
    skip_penalty: float = 0.5
    skip_days: int = 7
    # MMR: each next pick maximises lambda x score - (1 - lambda) x similarity to what was picked
    # (same artist = 1); 1.0 ranks by score alone.
    mmr_lambda: float = 0.8


@dataclass(frozen=True)
class NightlyConf:
    # Retrain a model only every N days, reusing the latest one in between (1: every night).
    embed_every_days: int = 1
    cluster_every_days: int = 1
    als_every_days: int = 1
    train_every_days: int = 7


@dataclass(frozen=True)
class CatalogConf:
    # Register the gold tables as <database>.<table> in the session's catalog (a Hive metastore when
    # Spark is configured with one) after each nightly; empty: do not register.
    database: str = ""


@dataclass(frozen=True)
class Config:
    warehouse: str
    raw_path: str
    log_level: str = field(default="INFO", metadata=_choices("DEBUG", "INFO", "WARNING", "ERROR"))
    spark: SparkConf = field(default_factory=SparkConf)
    generate: GenerateConf = field(default_factory=GenerateConf)
    ingest: IngestConf = field(default_factory=IngestConf)
    clean: CleanConf = field(default_factory=CleanConf)
    embed: EmbedConf = field(default_factory=EmbedConf)
    cluster: ClusterConf = field(default_factory=ClusterConf)
    als: AlsConf = field(default_factory=AlsConf)
    evaluate: EvaluateConf = field(default_factory=EvaluateConf)
    train: TrainConf = field(default_factory=TrainConf)
    recommend: RecommendConf = field(default_factory=RecommendConf)
    nightly: NightlyConf = field(default_factory=NightlyConf)
    catalog: CatalogConf = field(default_factory=CatalogConf)
    # Where the config came from, for messages; not a key of the file.
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})

    def table_path(self, layer: str, name: str) -> str:
        return join_path(self.warehouse, layer, name)


PATH_KEYS = {"warehouse", "raw_path"}


def join_path(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _is_dataclass_type(tp: Any) -> bool:
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


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check one value against its declared type; return it in the declared form."""
    def bad() -> ConfigError:
        return ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        for k, v in value.items():
            if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
                raise ConfigError(f"{source}: {key}.{k}: expected a scalar value, got {v!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is dt.date:
        if isinstance(value, dt.datetime):
            raise bad()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise bad() from None
        raise bad()
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a declaration bug, not user input


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or '<top level>'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: {prefix}{key}: unknown key (known here: {known})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: {key}: required value is missing")
            continue
        value = data[name]
        if _is_dataclass_type(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f"{key}.", source)
            continue
        if value is None:
            raise ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got null")
        value = _coerce(value, tp, key, source)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: {key}: {value!r} is not one of {', '.join(choices)}")
        kwargs[name] = value
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    """Cross-field and range rules that a type alone cannot say."""
    src = cfg.source
    positive = {
        "generate.users": cfg.generate.users, "generate.tracks": cfg.generate.tracks,
        "generate.artists": cfg.generate.artists, "generate.genres": cfg.generate.genres,
        "generate.events": cfg.generate.events, "generate.days": cfg.generate.days,
        "generate.files_per_day": cfg.generate.files_per_day,
        "clean.session_gap_minutes": cfg.clean.session_gap_minutes,
        "embed.vector_size": cfg.embed.vector_size, "embed.window": cfg.embed.window,
        "embed.min_count": cfg.embed.min_count, "embed.negative": cfg.embed.negative,
        "embed.epochs": cfg.embed.epochs, "embed.learning_rate": cfg.embed.learning_rate,
        "cluster.k_min": cfg.cluster.k_min, "cluster.max_iter": cfg.cluster.max_iter,
        "cluster.label_artists": cfg.cluster.label_artists, "cluster.segments": cfg.cluster.segments,
        "als.rank": cfg.als.rank, "als.alpha": cfg.als.alpha, "als.max_iter": cfg.als.max_iter,
        "als.checkpoint_interval": cfg.als.checkpoint_interval, "als.validation_days": cfg.als.validation_days,
        "evaluate.k": cfg.evaluate.k, "evaluate.test_days": cfg.evaluate.test_days,
        "evaluate.recent_tracks": cfg.evaluate.recent_tracks, "evaluate.neighbours": cfg.evaluate.neighbours,
        "train.world_size": cfg.train.world_size, "train.window": cfg.train.window,
        "train.embed_dim": cfg.train.embed_dim, "train.hidden": cfg.train.hidden, "train.layers": cfg.train.layers,
        "train.num_sampled": cfg.train.num_sampled, "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size, "train.learning_rate": cfg.train.learning_rate,
        "train.validation_days": cfg.train.validation_days, "train.eval_examples": cfg.train.eval_examples,
        "train.timeout_minutes": cfg.train.timeout_minutes,
        "recommend.k": cfg.recommend.k, "recommend.candidates_per_source": cfg.recommend.candidates_per_source,
        "recommend.max_per_artist": cfg.recommend.max_per_artist,
        "nightly.embed_every_days": cfg.nightly.embed_every_days,
        "nightly.cluster_every_days": cfg.nightly.cluster_every_days,
        "nightly.als_every_days": cfg.nightly.als_every_days, "nightly.train_every_days": cfg.nightly.train_every_days,
    }
    non_negative = {
        "embed.history_days": cfg.embed.history_days, "als.history_days": cfg.als.history_days,
        "cluster.k": cfg.cluster.k, "cluster.recency_half_life_days": cfg.cluster.recency_half_life_days,
        "als.reg_param": cfg.als.reg_param, "als.recency_half_life_days": cfg.als.recency_half_life_days,
        "train.history_days": cfg.train.history_days,
        "recommend.weight_als": cfg.recommend.weight_als, "recommend.weight_lstm": cfg.recommend.weight_lstm,
        "recommend.weight_item2vec": cfg.recommend.weight_item2vec,
        "recommend.weight_segment": cfg.recommend.weight_segment,
        "recommend.weight_popularity": cfg.recommend.weight_popularity,
        "recommend.weight_history": cfg.recommend.weight_history,
        "recommend.min_history": cfg.recommend.min_history,
        "recommend.exclude_played_days": cfg.recommend.exclude_played_days,
    }
    if cfg.catalog.database and not cfg.catalog.database.replace("_", "").isalnum():
        raise ConfigError(f"{src}: catalog.database: {cfg.catalog.database!r} is not a plain identifier")
    if not 0 <= cfg.recommend.skip_penalty <= 1:
        raise ConfigError(f"{src}: recommend.skip_penalty: must be between 0 and 1, got {cfg.recommend.skip_penalty}")
    if cfg.recommend.like_boost < 0 or cfg.recommend.skip_days < 0:
        raise ConfigError(f"{src}: recommend.like_boost and recommend.skip_days must not be negative")
    if not 0 <= cfg.recommend.mmr_lambda <= 1:
        raise ConfigError(f"{src}: recommend.mmr_lambda: must be between 0 and 1, got {cfg.recommend.mmr_lambda}")
    if not 0 <= cfg.train.dropout < 1:
        raise ConfigError(f"{src}: train.dropout: must be in [0, 1), got {cfg.train.dropout}")
    if cfg.train.sequence_files < cfg.train.world_size:
        raise ConfigError(f"{src}: train.sequence_files: {cfg.train.sequence_files} files cannot give each of "
                          f"train.world_size={cfg.train.world_size} ranks a shard")
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{src}: {key}: must not be negative, got {value}")
    if cfg.cluster.k == 1 or (cfg.cluster.k == 0 and not 2 <= cfg.cluster.k_min <= cfg.cluster.k_max):
        raise ConfigError(f"{src}: cluster.k: k must be 0 (choose in k_min..k_max, 2 <= k_min <= k_max) or >= 2; "
                          f"got k={cfg.cluster.k}, k_min={cfg.cluster.k_min}, k_max={cfg.cluster.k_max}")
    for key, values in {"als.grid_ranks": cfg.als.grid_ranks, "als.grid_reg_params": cfg.als.grid_reg_params,
                        "als.grid_alphas": cfg.als.grid_alphas}.items():
        for i, v in enumerate(values):
            if v < 0 or (key == "als.grid_ranks" and v == 0):
                raise ConfigError(f"{src}: {key}[{i}]: must be positive, got {v}")
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{src}: {key}: must be positive, got {value}")
    fractions = {
        "generate.dirty_fraction": cfg.generate.dirty_fraction,
        "generate.listenbrainz_fraction": cfg.generate.listenbrainz_fraction,
        "generate.mbid_fraction": cfg.generate.mbid_fraction,
        "generate.sequential_prob": cfg.generate.sequential_prob,
        "generate.repeat_prob": cfg.generate.repeat_prob,
        "generate.active_day_prob": cfg.generate.active_day_prob,
        "generate.artist_loyalty": cfg.generate.artist_loyalty,
    }
    for key, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{src}: {key}: must be between 0 and 1, got {value}")
    if cfg.generate.active_day_prob == 0.0:
        raise ConfigError(f"{src}: generate.active_day_prob: must be above 0")
    if cfg.generate.artists > cfg.generate.tracks:
        raise ConfigError(f"{src}: generate.artists: {cfg.generate.artists} artists need at least as many "
                          f"tracks (generate.tracks={cfg.generate.tracks})")
    if cfg.generate.genres > cfg.generate.artists:
        raise ConfigError(f"{src}: generate.genres: {cfg.generate.genres} genres need at least as many "
                          f"artists (generate.artists={cfg.generate.artists})")
    for i, fmt in enumerate(cfg.ingest.formats):
        if fmt not in INPUT_FORMATS:
            raise ConfigError(f"{src}: ingest.formats[{i}]: {fmt!r} is not one of {', '.join(INPUT_FORMATS)}")


def _resolve_path(value: str) -> str:
    value = os.path.expandvars(os.path.expanduser(value))
    if "://" in value or value.startswith("/"):
        return value
    return str(Path(value).resolve())


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. clean.session_gap_minutes=45")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text}: empty key")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _apply_override(data: dict, path: list[str], value: Any) -> None:
    """Set one dotted key; inside a free-form mapping (spark.conf) the rest of the path is one key."""
    node, section = data, Config
    for i, part in enumerate(path):
        declared = typing.get_type_hints(section).get(part) if _is_dataclass_type(section) else None
        if i == len(path) - 1 or declared is None:
            node[part] = value if i == len(path) - 1 else {".".join(path[i + 1:]): value}
            return  # an unknown key is reported by validation, with the file named
        if typing.get_origin(declared) is dict:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node[part][".".join(path[i + 1:])] = value
            return
        if not _is_dataclass_type(declared):
            raise ConfigError(f"--set {'.'.join(path)}: {part} is a value, not a section")
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node, section = node[part], declared


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
    for item in overrides:
        key_path, value = parse_override(item)
        _apply_override(data, key_path, value)
    cfg = _build(Config, data, "", source)
    cfg = dataclasses.replace(cfg, source=source, **{k: _resolve_path(getattr(cfg, k)) for k in PATH_KEYS})
    _check_values(cfg)
    return cfg


def with_overrides(cfg: Config, overrides: list[str]) -> Config:
    """A config with more `section.key=value` overrides applied, validated like a loaded one."""
    data = as_dict(cfg)
    for item in overrides:
        key_path, value = parse_override(item)
        _apply_override(data, key_path, value)
    out = _build(Config, data, "", cfg.source)
    out = dataclasses.replace(out, source=cfg.source, **{k: _resolve_path(getattr(out, k)) for k in PATH_KEYS})
    _check_values(out)
    return out


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
        elif isinstance(value, list):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out
