"""Every Delta table of the warehouse, declared once: name, layer, columns, partitioning.

Jobs import these objects and never retype a table name, a path or a column list. A table lives at
`<warehouse>/<layer>/<name>`; jobs.core.delta_io casts a DataFrame to the declared schema before
writing, so a column a stage forgets or misspells fails loudly instead of drifting the table. A
table written by more than one stage declares them (`writers`) and is partitioned by `stage`, so
each writer replaces only its own partitions.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from jobs.core.config import Config, join_path
from models.blend import SOURCES
from models.features import FEATURES
from udfs.formats import FEEDBACK_EVENTS
from udfs.quality import FEEDBACK_REASONS, LISTEN_REASONS


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    schema: T.StructType
    partition_by: tuple[str, ...] = ()
    doc: str = ""
    writers: tuple[str, ...] = ()  # the stages that write it, when more than one (column `stage`)
    not_null: tuple[str, ...] = ()  # contract columns: a write with a null there fails
    checks: tuple[tuple[str, str], ...] = ()  # (name, SQL condition): Delta CHECK constraints
    change_feed: bool = False  # Delta change data feed, for consumers that follow changes
    # Columns that name a person (the raw user id, raw lines holding it): kept out of Delta's per-file
    # statistics, so that no user id ever reaches the transaction log (forget-user can then purge
    # every copy by rewriting data files and vacuuming).
    personal: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]

    def path(self, cfg: Config) -> str:
        return join_path(cfg.warehouse, self.layer, self.name)

    @property
    def stats_columns(self) -> list[str]:
        """The columns Delta keeps per-file statistics on: all but the personal ones (and the partition
        columns, tracked per file anyway, and arrays and maps, which have no statistics)."""
        return [f.name for f in self.schema.fields if f.name not in self.personal and f.name not in self.partition_by
                and not isinstance(f.dataType, (T.ArrayType, T.MapType))]

    @property
    def declared_schema(self) -> T.StructType:
        """The schema with the NOT NULL contract columns marked non-nullable."""
        return T.StructType([T.StructField(f.name, f.dataType, f.name not in self.not_null)
                             for f in self.schema.fields])


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in dict.fromkeys(values))


def _schema(*cols: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, True) for name, dtype in cols])


S, I, L, D, TS, DBL = T.StringType(), T.IntegerType(), T.LongType(), T.DateType(), T.TimestampType(), T.DoubleType()

BRONZE_LISTENS = Table(
    "bronze", "listens",
    _schema(
        ("ingest_date", D),      # the run date the file was ingested for
        ("format", S),           # lastfm-tsv | listenbrainz-jsonl
        ("source_file", S),      # absolute URI of the raw file
        ("line_number", L),      # 1-based line of the record in its file
        ("raw", S),              # the line as read (valid UTF-8: invalid bytes replaced by U+FFFD)
        ("raw_base64", S),       # the line's original bytes, when they were not valid UTF-8; else null
        ("ingest_time", TS),     # when this version of the line was ingested
    ),
    partition_by=("ingest_date",),
    personal=("raw", "raw_base64"),
    doc="Raw records, one per input line and content, with lineage. Append-only: a file ingested twice adds "
        "nothing; a re-delivered file's new and changed lines are added beside the versions they replace "
        "(the newest ingest_time of a (file, line) is the one clean reads).",
)

SILVER_PLAYS = Table(
    "silver", "plays",
    _schema(
        ("user_id", S), ("user_idx", I), ("track_id", S), ("track_idx", I),
        ("artist_name", S), ("track_name", S), ("recording_mbid", S), ("artist_mbid", S),
        ("ts", TS), ("play_date", D), ("session_id", L), ("session_position", I),
        ("format", S), ("source_file", S), ("line_number", L), ("ingest_date", D),
    ),
    partition_by=("ingest_date",),
    doc="Clean plays: deduplicated, names normalised, sessionised, with stable integer ids.",
    personal=("user_id",),
    not_null=("user_id", "user_idx", "track_id", "track_idx", "ts", "play_date", "ingest_date"),
    checks=(("user_idx_positive", "user_idx > 0"), ("track_idx_positive", "track_idx > 0"),
            ("session_position_positive", "session_position >= 1")),
)

# The columns of silver.plays the model stages use: what they cache (the names and file lineage stay on disk).
PLAY_EVENTS = ("user_idx", "track_idx", "ts", "play_date", "session_id", "session_position")

SILVER_USERS = Table(
    "silver", "users",
    _schema(("user_id", S), ("user_idx", I), ("first_seen_date", D)),
    doc="Stable user ids: a user_idx once given never changes.",
    personal=("user_id",),
    not_null=("user_id", "user_idx"),
    checks=(("user_idx_positive", "user_idx > 0"),),
)

SILVER_TRACKS = Table(
    "silver", "tracks",
    _schema(
        ("track_id", S), ("track_idx", I), ("artist_name", S), ("track_name", S),
        ("recording_mbid", S), ("artist_mbid", S), ("first_seen_date", D),
    ),
    doc="Stable track ids: a track_idx once given never changes; names as first seen.",
    not_null=("track_id", "track_idx"),
    checks=(("track_idx_positive", "track_idx > 0"),),
)

SILVER_QUARANTINE = Table(
    "silver", "quarantine",
    _schema(
        ("ingest_date", D), ("format", S), ("source_file", S), ("line_number", L),
        ("raw", S), ("reason", S), ("stage", S), ("raw_base64", S),
    ),
    partition_by=("ingest_date", "stage"),
    doc="Every record refused, with the reason: listens by clean, feedback by ingest.",
    personal=("raw", "raw_base64"),
    writers=("ingest", "clean"),
    not_null=("ingest_date", "reason", "stage"),
    checks=(("reason_known", f"reason IN ({_sql_list(LISTEN_REASONS + FEEDBACK_REASONS)})"),),
)

SILVER_FEEDBACK = Table(
    "silver", "feedback",
    _schema(("user_id", S), ("track_id", S), ("event", S), ("ts", TS), ("source_file", S), ("line_number", L),
            ("ingest_date", D)),
    partition_by=("ingest_date",),
    doc="Explicit reactions: like, dislike, skip; the track by the same identity rule as plays.",
    personal=("user_id",),
    not_null=("user_id", "track_id", "event", "ts"),
    checks=(("event_known", f"event IN ({_sql_list(FEEDBACK_EVENTS)})"),),
)

SILVER_CLEAN_RUNS = Table(
    "silver", "clean_runs",
    _schema(
        ("ingest_date", D), ("bronze_rows", L), ("plays", L), ("quarantined", L), ("duplicates", L),
        ("new_users", L), ("new_tracks", L),
        ("quarantine_reasons", T.MapType(S, L)), ("finished_at", TS), ("replaced", L), ("erased", L),
        ("missing_mbid_share", DBL), ("alerts", S),
    ),
    doc="One row per cleaned date: bronze_rows (current versions of the date's lines) = plays + quarantined "
        "+ duplicates, with plays and quarantined counted in the committed tables; replaced: older versions "
        "of re-delivered lines. Written last, so its row is the marker that the date's clean committed.",
)

VEC = T.ArrayType(T.FloatType())

GOLD_TRACK_EMBEDDINGS = Table(
    "gold", "track_embeddings",
    _schema(("run_date", D), ("track_idx", I), ("track_id", S), ("vector", VEC), ("plays", L),
            ("model_version", S)),
    partition_by=("run_date",),
    doc="Word2Vec (item2vec) vector of every track played at least embed.min_count times.",
)

GOLD_TRACK_CLUSTERS = Table(
    "gold", "track_clusters",
    _schema(("run_date", D), ("track_idx", I), ("track_id", S), ("cluster", I), ("distance", DBL),
            ("cluster_label", S), ("algorithm", S), ("k", I)),
    partition_by=("run_date",),
    doc="Each embedded track's cluster, its distance to the centre, and the cluster's label (top artists).",
)

GOLD_USER_SEGMENTS = Table(
    "gold", "user_segments",
    _schema(("run_date", D), ("user_idx", I), ("user_id", S), ("segment", I), ("distance", DBL),
            ("taste", VEC), ("plays", L)),
    partition_by=("run_date",),
    doc="Each user's taste vector (recency- and play-weighted mean of embeddings) and its segment.",
    personal=("user_id",),
    change_feed=True,
)

GOLD_ALS_USER_FACTORS = Table(
    "gold", "als_user_factors",
    _schema(("run_date", D), ("user_idx", I), ("factors", VEC), ("model_version", S)),
    partition_by=("run_date",),
)

GOLD_ALS_ITEM_FACTORS = Table(
    "gold", "als_item_factors",
    _schema(("run_date", D), ("track_idx", I), ("factors", VEC), ("model_version", S)),
    partition_by=("run_date",),
)

GOLD_MODELS = Table(
    "gold", "models",
    _schema(("run_date", D), ("model", S), ("version", S), ("backend", S), ("world_size", I),
            ("params", S), ("metrics", S), ("path", S), ("created_at", TS)),
    doc="One row per trained model: parameters and validation metrics as JSON, where it is stored.",
)

GOLD_METRICS = Table(
    "gold", "metrics",
    _schema(("run_date", D), ("model", S), ("metric", S), ("k", I), ("value", DBL), ("users", L), ("stage", S)),
    partition_by=("run_date", "stage"),
    doc="Offline evaluation: every candidate source and baseline, every metric at k; next-track rows by train.",
    writers=("evaluate", "train", "rank"),
)

GOLD_SEQUENCES = Table(
    "gold", "sequences",
    _schema(("run_date", D), ("split", S), ("user_idx", I), ("session_id", L), ("play_date", D),
            ("x", T.ArrayType(I)), ("y", I)),
    partition_by=("run_date", "split"),
    doc="Next-track examples: the `train.window` tracks before a play (0-padded) and the play; "
        "split train/valid by the play's date.",
)

GOLD_RECOMMENDATIONS = Table(
    "gold", "recommendations",
    _schema(("run_date", D), ("user_id", S), ("rank", I), ("track_id", S), ("artist_name", S), ("track_name", S),
            ("score", DBL), ("source", S)),
    partition_by=("run_date",),
    doc="Contract: the top-K tracks of every user for a run date; a rerun replaces the date atomically.",
    personal=("user_id",),
    not_null=("run_date", "user_id", "rank", "track_id", "score", "source"),
    checks=(("rank_positive", "rank >= 1"), ("score_finite", "score >= -1.0E308 AND score <= 1.0E308"),
            ("source_known", f"source IN ({_sql_list(SOURCES)})")),
    change_feed=True,
)

GOLD_CANDIDATES = Table(
    "gold", "candidates",
    _schema(("run_date", D), ("user_idx", I), ("track_idx", I), ("source", S), *[(f, DBL) for f in FEATURES]),
    partition_by=("run_date",),
    doc="Every user's candidates of a run date with the ranker's features (models.features): what the "
        "lists were chosen from; the next day's plays label them for the ranker and for evaluate.",
    not_null=("run_date", "user_idx", "track_idx"),
)

GOLD_STAGED_RECOMMENDATIONS = Table(
    "gold", "staged_recommendations",
    GOLD_RECOMMENDATIONS.schema,
    partition_by=("run_date",),
    doc="A night's lists as recommend computed them, before the publish gate: copied into "
        "gold.recommendations when every check passes, kept here for inspection when one fails.",
    personal=("user_id",),
)

SILVER_ERASURES = Table(
    "silver", "erasures",
    _schema(("user_hash", S), ("erased_at", TS)),
    doc="Append-only record of right-to-erasure requests: a salted SHA-256 of the user id (never the id) and "
        "when; ingest and clean drop every record of a listed user, so re-ingested raw files cannot bring one back.",
    not_null=("user_hash", "erased_at"),
)

GOLD_RUNS = Table(
    "gold", "runs",
    _schema(("run_date", D), ("stage", S), ("status", S), ("started_at", TS), ("finished_at", TS),
            ("rows", S), ("error", S)),
    doc="One row per (run date, stage) of the nightly run: succeeded, reused, failed; counts as JSON.",
    not_null=("run_date", "stage", "status"),
    checks=(("status_known", "status IN ('succeeded', 'reused', 'failed', 'waiting_for_history')"),),
)

ALL_TABLES = (BRONZE_LISTENS, SILVER_PLAYS, SILVER_USERS, SILVER_TRACKS, SILVER_QUARANTINE, SILVER_CLEAN_RUNS,
              SILVER_FEEDBACK, GOLD_RECOMMENDATIONS, GOLD_RUNS, GOLD_SEQUENCES, GOLD_TRACK_EMBEDDINGS,
              GOLD_TRACK_CLUSTERS, GOLD_USER_SEGMENTS, GOLD_ALS_USER_FACTORS, GOLD_ALS_ITEM_FACTORS, GOLD_MODELS,
              GOLD_METRICS, GOLD_CANDIDATES, GOLD_STAGED_RECOMMENDATIONS, SILVER_ERASURES)
