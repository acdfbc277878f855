"""Raw files: where a format's files for a date live, which of them are read (every entry under a
date folder is read or reported as skipped, with its reason), and their lines as numbered rows.

Raw files for date D and format F live under `<raw_path>/<F>/date=<D>/` (any names, any depth), or
under another folder per date that `ingest.layout` describes (`{date}` alone: one format only).
An entry is skipped, and reported, when it is hidden (name starting with `.` or `_`, which Spark
would pass over silently), a symlink leading out of raw_path, not a regular file, unreadable, an
archive other than gzip or bzip2 text (.zip, .tar, .7z, .xz, .zst, ...), or a .gz/.bz2 file whose
stream is corrupt or truncated (checked by decompressing it once on the driver). raw_path is a
literal path: glob characters in it or in file names are escaped before Spark sees them. Line
numbers are computed without funnelling a file through one task: each split of a file numbers its
own lines in read order, and the splits are offset by the line counts of the splits before them.
"""
from __future__ import annotations

import bz2
import datetime as dt
import gzip
import os
import re
import stat
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core.config import Config, join_path
from udfs.parse import readable_text

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open}
ARCHIVES = (".zip", ".tar", ".tgz", ".7z", ".xz", ".zst", ".lz4", ".lzo", ".snappy", ".rar", ".z")
_GLOB = re.compile(r"([\\\[\]\{\}\*\?])")


@dataclass
class Discovery:
    """What a date folder holds: the files to read and every entry skipped, with its reason."""
    files: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def raw_dir(cfg: Config, fmt: str, day: dt.date) -> str:
    """The folder of `fmt`'s raw files for `day`: raw_path joined with ingest.layout filled in."""
    return join_path(cfg.raw_path, cfg.ingest.layout.format(format=fmt, date=day.isoformat()))


def raw_bytes(spark: SparkSession, cfg: Config, day: dt.date) -> int:
    """Bytes under the date folders of D's configured listen formats (0 where none): a bound on the
    night's raw lines before they are read (jobs.nightly sizes a night's execution settings by it)."""
    total = 0
    for folder in dict.fromkeys(raw_dir(cfg, fmt, day) for fmt in cfg.ingest.formats):
        if "://" in folder:
            fs, hpath = _hadoop_path(spark, folder)
            total += fs.getContentSummary(hpath).getLength() if fs.exists(hpath) else 0
            continue
        for current, _, names in os.walk(folder):
            total += sum(os.stat(os.path.join(current, name)).st_size for name in names
                         if os.path.isfile(os.path.join(current, name)))
    return total


def has_feedback_folder(cfg: Config) -> bool:
    """Feedback has a folder of its own only when the layout names the format."""
    return "{format}" in cfg.ingest.layout


def _hadoop_path(spark: SparkSession, uri: str):
    """(Hadoop FileSystem, Path) of a URI, through the session's Hadoop configuration."""
    hpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def path_exists(spark: SparkSession, path: str) -> bool:
    if "://" not in path:
        return os.path.exists(path)
    fs, hpath = _hadoop_path(spark, path)
    return fs.exists(hpath)


def glob_escaped(path: str) -> str:
    """A literal path for Spark's readers, which treat []{}*?\\ as glob characters."""
    return _GLOB.sub(r"\\\1", path)


def _compressed_ok(path: str, opener) -> str | None:
    """None when the compressed stream reads to its end, else why not."""
    try:
        with opener(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, ValueError) as exc:
        return f"corrupt {opener.__module__} stream: {exc}"
    return None


def _judge(path: str, root: str) -> str | None:
    """Why a local entry is skipped, or None to read it."""
    name = os.path.basename(path)
    if name.startswith((".", "_")):
        return "hidden (name starts with . or _)"
    if os.path.islink(path):
        target = os.path.realpath(path)
        if os.path.commonpath([target, os.path.realpath(root)]) != os.path.realpath(root):
            return f"symlink leaving raw_path (to {target})"
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "unreadable: permission denied"
    lower = name.lower()
    if lower.endswith(ARCHIVES):
        return "unsupported archive (plain, .gz or .bz2 text only)"
    with open(path, "rb") as head:
        if head.read(4) == b"PK\x03\x04":
            return "unsupported archive (zip data)"
    for suffix, opener in COMPRESSED.items():
        if lower.endswith(suffix):
            return _compressed_ok(path, opener)
    return None


def discover(spark: SparkSession, folder: str, root: str) -> Discovery:
    """Every entry under `folder` (a date folder), read or skipped; `root` is raw_path."""
    found = Discovery()
    if "://" in folder:  # a URI: Spark lists it; hidden files are left out by Spark, as documented
        found.files.append(folder)
        return found
    for current, dirs, names in os.walk(folder, followlinks=False):
        for d in sorted(dirs):
            if d.startswith((".", "_")) or os.path.islink(os.path.join(current, d)):
                found.skipped.append({"file": os.path.join(current, d), "reason": "hidden or linked folder"})
        dirs[:] = [d for d in sorted(dirs) if not d.startswith((".", "_"))
                   and not os.path.islink(os.path.join(current, d))]
        for name in sorted(names):
            path = os.path.join(current, name)
            reason = _judge(path, root)
            if reason:
                found.skipped.append({"file": path, "reason": reason})
            else:
                found.files.append(path)
    return found


def numbered_lines(lines: DataFrame) -> DataFrame:
    """Text rows (raw, source_file, _block, _order) with their 1-based line_number in the file.

    _block is the byte offset of the split a row was read from and _order a value increasing in
    read order within a split (monotonically_increasing_id taken right at the scan).
    """
    in_block = Window.partitionBy("source_file", "_block").orderBy("_order")
    numbered = lines.withColumn("_in_block", F.row_number().over(in_block))
    earlier_blocks = Window.partitionBy("source_file").orderBy("_block").rowsBetween(Window.unboundedPreceding, -1)
    offsets = (numbered.groupBy("source_file", "_block").agg(F.count("*").alias("_n"))
               .withColumn("_before", F.coalesce(F.sum("_n").over(earlier_blocks), F.lit(0)))
               .drop("_n"))
    return (numbered.join(offsets, ["source_file", "_block"])
            .withColumn("line_number", (F.col("_before") + F.col("_in_block")).cast("long"))
            .drop("_block", "_order", "_in_block", "_before"))


def read_lines(spark: SparkSession, files: list[str], fmt: str, day: dt.date) -> DataFrame:
    """The lines of `files` (or of every file under a URI folder) as rows (ingest_date, format,
    source_file, line_number, raw, raw_base64, ingest_time)."""
    text = spark.read.option("recursiveFileLookup", "true").text([glob_escaped(f) for f in files])
    raw, raw_base64 = readable_text(F.col("value"))
    lines = text.select(
        raw.alias("raw"),
        raw_base64.alias("raw_base64"),
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_order"),
    )
    return (numbered_lines(lines)
            .withColumn("ingest_date", F.lit(day))
            .withColumn("format", F.lit(fmt))
            .withColumn("ingest_time", F.current_timestamp()))
