"""The Spark session, with Delta Lake, built from a validated config.

The Delta jars come from Maven Central through Spark's own package resolution (Ivy) the first
time, into the setlist cache (`$SETLIST_CACHE`, default `~/.cache/setlist`); the resolved jar list
is recorded there, keyed by the package coordinates, and every later session or `submit.sh` run
passes those files as `spark.jars`, so it starts offline.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from jobs.core.config import Config

log = logging.getLogger("setlist.session")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Timestamps in the logs are UTC; every date a job derives must be too.
    "spark.sql.session.timeZone": "UTC",
}

# Compiled query classes Spark keeps per JVM (a static setting; Spark's default is 100). One night
# of `make demo` compiles 803 distinct classes, one recommend stage a few hundred: with 100 entries
# the cache evicts in a cycle, so every stage recompiles what it compiled the night (or the run)
# before (1,774 compilations in that demo). A config's spark.conf may set it otherwise
# (docs/performance.md, "Compiled classes kept for the whole application").
CODEGEN_CACHE_ENTRIES = 4000

# Files a write task keeps open at once, one per partition value it meets, instead of sorting its
# rows by the table's partition columns first (spark.sql.maxConcurrentOutputFileWriters; Spark's
# default 0 always sorts). Delta's writer cannot see the order a stage gave its rows (its constraint
# check hides the adaptive plan's final order), so without it every write to a partitioned table
# sorted all its rows by a column that holds one value per write: clean's plays, a night's largest
# write, by about 900 MB of rows on the 10M rung's day. A task that meets more values than this
# sorts the rest, as before. A config's spark.conf may set it otherwise (docs/performance.md, "The
# night's plays shuffled and sorted once").
CONCURRENT_WRITERS = 2

# The module every executor runs as its Python daemon (spark.python.daemon.module; Spark's default
# pyspark.daemon): pyspark's daemon, after importing torch, pandas, pyarrow and pyspark.ml once, so
# that the workers it forks, which Spark stops after a minute idle, do not each import them again
# before a stage's pandas functions and LSTM scoring (jobs/core/worker_daemon.py; docs/performance.md,
# "Python workers forked with their libraries loaded"). A config's spark.conf may set it back to
# pyspark.daemon.
WORKER_DAEMON = "jobs.core.worker_daemon"

# Every Spark JVM (the driver, and the executors on a cluster) lets HotSpot's JIT compile methods of
# any size. HotSpot leaves a method of more than 8,000 bytes of bytecode to its interpreter
# (DontCompileHugeMethods), and the code Spark generates for a wide projection passes that: clean's
# parse of a line into its columns and reason ran interpreted, about half its time
# (docs/performance.md, "Generated code compiled by the JIT"). Put first, so that a config's own
# extraJavaOptions can set -XX:+DontCompileHugeMethods back.
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
JAVA_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


def cache_dir() -> Path:
    return Path(os.environ.get("SETLIST_CACHE", Path.home() / ".cache" / "setlist"))


def _jar_list_file(packages: list[str]) -> Path:
    key = hashlib.sha256(",".join(sorted(packages)).encode()).hexdigest()[:16]
    return cache_dir() / "jars" / f"{key}.txt"


def cached_jars(packages: list[str]) -> list[str] | None:
    """Local jar files resolved earlier for these coordinates, or None if not (all) cached."""
    listing = _jar_list_file(packages)
    if not listing.exists():
        return None
    jars = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not jars or not all(Path(j).exists() for j in jars):
        return None
    return jars


def _record_jars(packages: list[str], spark_jars: str) -> list[str]:
    jars = [urlparse(uri).path if uri.startswith("file:") else uri for uri in spark_jars.split(",") if uri]
    listing = _jar_list_file(packages)
    listing.parent.mkdir(parents=True, exist_ok=True)
    tmp = listing.with_suffix(".tmp")
    tmp.write_text("\n".join(jars) + "\n")
    tmp.replace(listing)
    return jars


def resolve_jars(packages: list[str]) -> list[str]:
    """Resolve the packages once through Spark's Ivy resolver and record the jar files."""
    jars = cached_jars(packages)
    if jars is not None:
        return jars
    log.info("resolving %s from Maven Central into %s (once)", ",".join(packages), cache_dir() / "ivy")
    spark = (SparkSession.builder.master("local[1]").appName("setlist-resolve")
             .config("spark.jars.packages", ",".join(packages))
             .config("spark.jars.ivy", str(cache_dir() / "ivy"))
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    try:
        return _record_jars(packages, spark.sparkContext.getConf().get("spark.jars", ""))
    finally:
        spark.stop()


# The driver's class archive (JDK AppCDS): setup/class_archive.py builds it once by running a tiny
# night (generate, ingest, clean) in a driver started with -XX:ArchiveClassesAtExit, which writes the
# ~20,000 classes it loaded (Spark, Catalyst, Delta, Scala) into one file at exit; a later driver
# started with -XX:SharedArchiveFile maps them instead of reading and verifying the jars again. It
# lives in $SETLIST_CACHE/cds, keyed by what it depends on: the java binary, pyspark's version and
# jars, the Delta jars and CLASS_ARCHIVE_VERSION. A JVM whose class path does not match (other jars
# added) ignores it and loads its classes as usual: the archive can make a start faster, never wrong.
CLASS_ARCHIVE_VERSION = "1"  # bump when setup/class_archive.py's workload changes what it loads
CLASS_ARCHIVE_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # a mismatch is no error: no JVM warning


def java_binary() -> Path | None:
    """The java that spark-submit starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else (Path(p) if (p := shutil.which("java")) else None)
    return found.resolve() if found and found.exists() else None


def class_archive_path(packages: list[str]) -> Path | None:
    """Where the archive for this java, this pyspark and these Delta packages lives (None: no java)."""
    import pyspark
    java = java_binary()
    if java is None:
        return None
    spark_jars = sorted(p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    stat = java.stat()
    parts = [str(java), str(stat.st_size), str(int(stat.st_mtime)), pyspark.__version__, *spark_jars,
             *(cached_jars(packages) or sorted(packages)), CLASS_ARCHIVE_VERSION]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return cache_dir() / "cds" / f"driver-{key}.jsa"


def driver_java_options(cfg: Config, conf: dict[str, str]) -> str:
    """The config's spark.driver.extraJavaOptions, plus the class archive once setup built it, when
    `spark.class_archive` is on and the driver starts on this machine (not in cluster deploy mode)."""
    own = conf.get("spark.driver.extraJavaOptions", "")
    if (not cfg.spark.class_archive or "SharedArchiveFile" in own or "ArchiveClassesAtExit" in own
            or conf.get("spark.submit.deployMode", "client") == "cluster"):
        return own
    path = class_archive_path(cfg.spark.packages)
    if path is None or not path.is_file():
        return own
    return " ".join(part for part in (own, f"-XX:SharedArchiveFile={path}", CLASS_ARCHIVE_QUIET) if part)


def spark_conf(cfg: Config) -> dict[str, str]:
    """Every Spark setting the environment asks for: Delta's, the files' umask, the compiled-class cache
    (CODEGEN_CACHE_ENTRIES), the files a write task keeps open (CONCURRENT_WRITERS), the executors'
    Python daemon (WORKER_DAEMON), then the config file's (which may override any of them); the JVMs'
    JIT_OPTIONS go before the config's own Java options."""
    conf = dict(DELTA_CONF) | {"spark.hadoop.fs.permissions.umask-mode": cfg.file_umask,
                               "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
                               "spark.sql.codegen.cache.maxEntries": str(CODEGEN_CACHE_ENTRIES),
                               "spark.sql.maxConcurrentOutputFileWriters": str(CONCURRENT_WRITERS),
                               "spark.python.daemon.module": WORKER_DAEMON}
    if cfg.spark.event_log:
        conf |= {"spark.eventLog.enabled": "true", "spark.eventLog.dir": event_log_dir(cfg)}
    conf.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in cfg.spark.conf.items()})
    for key in JAVA_OPTION_KEYS:
        conf[key] = " ".join(part for part in (JIT_OPTIONS, conf.get(key, "")) if part)
    if options := driver_java_options(cfg, conf):  # the driver's class archive, once setup built it
        conf["spark.driver.extraJavaOptions"] = options
    return conf


def event_log_dir(cfg: Config) -> str:
    """Where Spark writes event logs (the history server's spark.history.fs.logDirectory)."""
    root = cfg.warehouse.rstrip("/") + "/_spark_events"
    if "://" not in root:
        os.makedirs(root, exist_ok=True)  # Spark requires the folder to exist
        return "file://" + root
    return root


# Settings for a small night (nightly.interpreted_below_rows; docs/performance.md, "Interpreted execution for small
# nights"): on a few thousand rows, planning, generating and compiling every distinct query costs more
# than the rows. "interpreted": Spark's interpreted expressions, without whole-stage code generation
# or adaptive re-planning; "no-aqe": only the re-planning off. The stage runner adds one shuffle
# partition per task slot to either (small_night_settings).
SMALL_NIGHT = {
    "interpreted": {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
                    "spark.sql.adaptive.enabled": "false"},
    "no-aqe": {"spark.sql.adaptive.enabled": "false"},
}


def task_slots(spark: SparkSession) -> int:
    """Tasks the application runs at once: a local master's threads (`local`, `local[N]`,
    `local[*]`, `local[N,F]`), else Spark's default parallelism (the executors' cores, unless
    spark.default.parallelism says otherwise)."""
    master = spark.sparkContext.master
    if found := re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master):
        threads = found.group(1)
        return 1 if threads is None else (os.cpu_count() or 1) if threads == "*" else max(1, int(threads))
    return spark.sparkContext.defaultParallelism


def small_night_settings(spark: SparkSession, mode: str) -> dict[str, str]:
    """SMALL_NIGHT[mode], and one shuffle partition per task slot where the session has more. With
    adaptive execution off, nothing coalesces a small night's shuffle partitions (adaptive execution
    merges small ones up to its advisory 64 MB): every shuffle would run spark.sql.shuffle.partitions
    tasks of a few hundred rows (docs/performance.md, "One shuffle partition per task slot on a small night": the
    demo's third night's stages x0.86)."""
    settings = dict(SMALL_NIGHT[mode])
    slots = task_slots(spark)
    if int(spark.conf.get("spark.sql.shuffle.partitions")) > slots:
        settings["spark.sql.shuffle.partitions"] = str(slots)
    return settings


@contextlib.contextmanager
def sql_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Within the block, the session runs with `settings` (runtime SQL settings, e.g. a SMALL_NIGHT
    entry); each is restored on the way out (unset where it was unset), whatever happens inside."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def local_ip(cfg: Config, conf: dict[str, str]) -> str | None:
    """The address a local master's JVM should take as its own (SPARK_LOCAL_IP): the driver's bind
    address (or host) of the config, where the master is local; None on a cluster. Without it
    Spark looks the host's name up at every start and, where that resolves to a loopback address,
    warns that it picked another interface, although a local run binds to the configured address."""
    if not cfg.spark.master.startswith("local"):
        return None
    return conf.get("spark.driver.bindAddress") or conf.get("spark.driver.host") or None


def under_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: Config) -> SparkSession:
    """The session for a job: the one spark-submit started, or a new one on cfg.spark.master."""
    builder = SparkSession.builder
    conf = spark_conf(cfg)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if not under_spark_submit():  # else spark-submit already set master, name, jars and the umask
        os.umask(int(cfg.file_umask, 8))  # before the JVM starts: it and its workers inherit it
        if address := local_ip(cfg, conf):  # a user's own SPARK_LOCAL_IP wins
            os.environ.setdefault("SPARK_LOCAL_IP", address)
        # one BLAS thread per task: Spark runs a task per core already (OpenBLAS would start its own)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # Python workers (and the daemon, WORKER_DAEMON) import the project's code: the JVM, and so
        # every process it starts, gets its root on PYTHONPATH (spark-submit runs ship it as a zip)
        project = str(Path(__file__).resolve().parents[2])
        if project not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (project, os.environ.get("PYTHONPATH")) if p)
        builder = builder.master(cfg.spark.master).appName(cfg.spark.app_name)
        jars = cached_jars(cfg.spark.packages) or resolve_jars(cfg.spark.packages)
        builder = builder.config("spark.jars", ",".join(jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
