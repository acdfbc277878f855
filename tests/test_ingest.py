"""ingest: every raw line lands once in bronze.listens with its file and exact line number."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from jobs import ingest
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.errors import InputError
from jobs.core.rawfiles import raw_dir
from jobs.core.tables import BRONZE_LISTENS
from udfs import quality as Q

DAY = dt.date(2026, 1, 2)


def write_raw(cfg, fmt: str, name: str, lines: list[str]):
    folder = raw_dir(cfg, fmt, DAY)
    import pathlib
    path = pathlib.Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_line_numbers_are_exact_across_file_splits_and_reingest_adds_nothing(spark, cfg):
    big = [f"user_{i % 7}\t2026-01-02T10:00:00Z\t\tArtist {i}\t\tLine {i} ünïcode" for i in range(1, 3001)]
    write_raw(cfg, "lastfm-tsv", "a.tsv", big)
    write_raw(cfg, "lastfm-tsv", "b.tsv", ["only line"])
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16384")  # force many splits per file
    try:
        first = ingest.run(spark, cfg, DAY, "lastfm-tsv")
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    assert first == {"lastfm-tsv": {"read": 3001, "inserted": 3001, "already_ingested": 0, "erased": 0, "files": 2,
                                    "skipped": []}}
    rows = delta_io.read(spark, cfg, BRONZE_LISTENS)
    a = rows.where(F.col("source_file").endswith("/a.tsv"))
    mismatched = a.where(F.col("raw") != F.concat(F.lit("user_"), (F.col("line_number") % 7).cast("string"),
                                                F.lit("\t2026-01-02T10:00:00Z\t\tArtist "),
                                                F.col("line_number").cast("string"), F.lit("\t\tLine "),
                                                F.col("line_number").cast("string"), F.lit(" ünïcode")))
    assert a.count() == 3000 and mismatched.count() == 0
    assert sorted(r[0] for r in a.select("line_number").collect()) == list(range(1, 3001))
    b = rows.where(F.col("source_file").endswith("/b.tsv")).select("line_number", "raw", "format", "ingest_date")
    assert [tuple(r) for r in b.collect()] == [(1, "only line", "lastfm-tsv", DAY)]

    again = ingest.run(spark, cfg, DAY, "lastfm-tsv")
    assert again == {"lastfm-tsv": {"read": 3001, "inserted": 0, "already_ingested": 3001, "erased": 0, "files": 2,
                                    "skipped": []}}
    assert delta_io.read(spark, cfg, BRONZE_LISTENS).count() == 3001


def test_files_the_warehouse_writes_are_not_world_readable(spark, cfg):
    import os
    import stat
    write_raw(cfg, "lastfm-tsv", "a.tsv", ["u\t2026-01-02T10:00:00Z\t\tA\t\tT"])
    ingest.run(spark, cfg, DAY, "lastfm-tsv")
    modes = {path: stat.S_IMODE(os.stat(path).st_mode)
             for folder, _, names in os.walk(cfg.warehouse) for path in [folder, *(f"{folder}/{n}" for n in names)]}
    assert len(modes) > 3 and not {p: oct(m) for p, m in modes.items() if m & 0o007}  # conf file_umask 027


def test_a_new_file_for_the_same_day_is_added_beside_the_old_ones(spark, cfg):
    write_raw(cfg, "listenbrainz-jsonl", "1.jsonl", ['{"a": 1}', '{"a": 2}'])
    ingest.run(spark, cfg, DAY)
    write_raw(cfg, "listenbrainz-jsonl", "2.jsonl", ['{"a": 3}'])
    summary = ingest.run(spark, cfg, DAY)
    assert summary == {"listenbrainz-jsonl": {"read": 3, "inserted": 1, "already_ingested": 2, "erased": 0, "files": 2,
                                              "skipped": []},
                       "missing_formats": ["lastfm-tsv"]}
    assert delta_io.read(spark, cfg, BRONZE_LISTENS).count() == 3


def test_missing_raw_input_names_the_path_and_the_conf_key(spark, cfg):
    with pytest.raises(InputError) as info:
        ingest.run(spark, cfg, DAY, "lastfm-tsv")
    assert str(info.value) == (f"raw input path does not exist: {cfg.raw_path}/lastfm-tsv/date=2026-01-02 "
                               "(conf key raw_path)")
    assert info.value.exit_code == 3
    with pytest.raises(InputError, match="no raw input for 2026-01-02"):
        ingest.run(spark, cfg, DAY)


def test_feedback_is_parsed_by_the_listens_rules(spark):
    import json

    def line(**record):
        base = {"user_name": " u1 ", "event": "Like", "timestamp": 1767348000,
                "track_metadata": {"artist_name": "A", "track_name": "T", "additional_info": {}}}
        return json.dumps({**base, **record})
    rows = [line(), line(timestamp=0), line(user_name=""), line(event="shrug"), line(timestamp="soon"),
            "[1, 2]", line(timestamp=1767398400), line(track_metadata={"artist_name": "A", "track_name": " "})]
    lines = spark.createDataFrame([(i + 1, raw, None) for i, raw in enumerate(rows)],
                                  "line_number long, raw string, raw_base64 string")
    got = {r["line_number"]: (r["reason"], r["user_id"], r["event"])
           for r in ingest.feedback_events(lines, DAY, dt.date(2002, 1, 1), "NFKC").collect()}
    assert got[1] == (None, "u1", "like")
    # a 1970 reaction is refused exactly as a 1970 play is
    assert [got[i][0] for i in range(2, 9)] == [Q.TIMESTAMP_BEFORE_FLOOR, Q.EMPTY_USER, Q.UNKNOWN_EVENT,
                                                Q.UNPARSABLE_TIMESTAMP, Q.MALFORMED_JSON,
                                                Q.TIMESTAMP_AFTER_RUN_DATE, Q.MISSING_TRACK]


def test_a_layout_without_the_format_reads_one_format_per_date_folder(spark, cfg):
    """The real dev set arrives as raw/<date>/listens.tsv: ingest.layout '{date}' with one format."""
    from pathlib import Path

    from jobs.core.errors import ConfigError
    flat = with_overrides(cfg, ["ingest.layout='{date}'", "ingest.formats=[lastfm-tsv]"])
    folder = Path(cfg.raw_path) / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "listens.tsv").write_text("u\t2026-01-02T10:00:00Z\t\tA\t\tT\nv\t2026-01-02T11:00:00Z\t\tB\t\tS\n")
    summary = ingest.run(spark, flat, DAY)
    assert summary == {"lastfm-tsv": {"read": 2, "inserted": 2, "already_ingested": 0, "erased": 0, "files": 1,
                                      "skipped": []}}  # no feedback looked for in the listens' own folder
    with pytest.raises(ConfigError, match="ingest.layout: '\\{date\\}' has no \\{format\\}"):
        with_overrides(cfg, ["ingest.layout='{date}'"])  # two formats cannot share a folder
    with pytest.raises(ConfigError, match="ingest.layout"):
        with_overrides(cfg, ["ingest.layout='{format}/all'"])  # no date
