"""What a night costs as the logs grow, stage by stage, and against the tools a user would pick instead.

    .venv/bin/python bench/scale.py [--events 1000000 3000000 10000000] [--days 3] [--compare]
                                    [--workdir /tmp/setlist-scale] [--set key=value ...]
    .venv/bin/python bench/scale.py --compare-on WAREHOUSE DATE [--only als recommend]

For each number of events N of the ladder: `generate` N events over --days days (N/100 users, N/50
tracks), then the nightly stages through `backfill` (ingest and clean of every day; the model stages
embed, cluster, als, rank and recommend for the last two days; the LSTM is left to
bench/train_throughput.py). Per stage (ingest and clean summed over all days, the model stages over
the last two): wall
time, rows/s (rows: raw lines read for ingest, bronze rows for clean, every play up to the day for the
model stages), rows/s per core, shuffle bytes written (Spark's REST API) and the driver JVM's peak
heap (sampled every 0.2 s). Then, across the ladder, the slope of each stage's time against the
events (log-log; 1.0 is linear) and the ratio of time per 10x events.

With --compare, on the largest N, in the same run and on the same data (ratios, not absolute times):
- ALS: the als stage's fit + top-N for every user against `implicit` (same matrix, rank, iterations,
  alpha, regularisation) on all cores;
- Word2Vec: gensim (its corpus streamed through the driver) against MLlib's distributed Word2Vec;
- ingest + clean against one DuckDB pass over the same raw files doing the same parsing, rules,
  name normalisation, track identity, deduplication and quarantine, written to Parquet;
- recommend (every source, features, ranking, gate, publish) against bare `recommendForAllUsers`;
- one incremental night (the last day) against a full rebuild of the same history in a new warehouse.
Training throughput against a single process is bench/train_throughput.py.

Progress: a line after every stage run of a rung (and of --compare's rebuild): the stage, its day,
rows and seconds, and the time left, each stage's later runs at the mean of its runs so far; and a
line after every rung. The jobs' own logging stays at WARNING.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import shutil
import threading
import time
import urllib.request
from pathlib import Path

from _common import generated_sizes, session

FIRST = dt.date(2026, 1, 1)
MODEL_STAGES = ("embed", "cluster", "als", "rank", "recommend")
# The bench's own progress lines (INFO) show while the jobs' own logging stays at WARNING.
LOG = logging.getLogger("setlist.bench")


def stage_progress(label: str, plan: list[tuple[tuple[str, ...], list]]):
    """Progress over every (stage, day) run of `plan` ([(stages, days)] in order), each stage its
    own kind: the time left of a stage's later runs is the mean of its runs so far."""
    from models.progress import Progress
    kinds = [stage for stages, days in plan for _ in days for stage in stages]
    return Progress(LOG, label, total=len(kinds), unit="stage runs", kinds=kinds)


class HeapSampler:
    """The driver JVM's used heap, sampled in a thread; `peak()` since the last reset."""

    def __init__(self, spark):
        self.runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
        self.value, self.stop = 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop.wait(0.2):
            try:
                used = self.runtime.totalMemory() - self.runtime.freeMemory()
                self.value = max(self.value, used)
            except Exception:  # noqa: BLE001 - the session is closing
                return

    def peak(self, reset: bool = True) -> int:
        value = self.value
        if reset:
            self.value = 0
        return value


def shuffle_written(spark) -> int:
    """Shuffle bytes written by every completed stage of the application so far."""
    url = spark.sparkContext.uiWebUrl
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/stages?status=complete") as answer:
        return sum(int(s.get("shuffleWriteBytes", 0)) for s in json.load(answer))


def measured_stages(spark, cfg, stages, days, sampler, progress=None) -> dict:
    """Run `stages` for each of `days` (nightly.run_stages); per stage: seconds, input rows, shuffle
    bytes and peak heap, summed (times, rows, bytes) or maxed (heap) over the days. Each run is a
    step of `progress` (stage_progress) when one is given."""
    from pyspark.sql import functions as F

    from jobs import nightly
    from jobs.core import delta_io
    from jobs.core.tables import SILVER_PLAYS
    out: dict[str, dict] = {}
    for day in days:
        plays = None
        for stage in stages:
            before, clock = shuffle_written(spark), time.monotonic()
            sampler.peak()
            results: dict = {}
            nightly.run_stages(spark, cfg, day, (stage,), results=results)
            seconds = time.monotonic() - clock
            rows = nightly.work_rows(stage, results.get(stage, {})) if stage in results else 0
            if stage in MODEL_STAGES:  # a model stage's work is the plays it reads: every play up to the day
                if plays is None:
                    plays = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") <= F.lit(day)).count()
                rows = plays
            entry = out.setdefault(stage, {"seconds": 0.0, "rows": 0, "shuffle_bytes": 0, "peak_heap": 0})
            entry["seconds"] += seconds
            entry["rows"] += rows
            entry["shuffle_bytes"] += shuffle_written(spark) - before
            entry["peak_heap"] = max(entry["peak_heap"], sampler.peak())
            if progress is not None:
                progress.step(what=f"{stage} {day}: {rows:,} rows in {seconds:.1f} s")
    return out


def rung(spark, base, events: int, days: int, workdir: Path, sampler) -> tuple[dict, object]:
    from jobs import generate
    from jobs.core.config import with_overrides
    cfg = with_overrides(base, [f"warehouse={workdir / 'warehouse'}", f"raw_path={workdir / 'raw'}",
                                *generated_sizes(events, days),
                                f"generate.end_date={FIRST + dt.timedelta(days=days - 1)}"])
    clock = time.monotonic()
    generate.run(spark, cfg)
    generated = time.monotonic() - clock
    dates = [FIRST + dt.timedelta(days=i) for i in range(days)]
    LOG.info("scale %s events: generated in %.1f s", f"{events:,}", generated)
    plan = [(("ingest", "clean"), dates), (MODEL_STAGES, dates[-2:])]
    progress = stage_progress(f"scale {events:,} events", plan)
    stages = measured_stages(spark, cfg, *plan[0], sampler, progress)
    stages |= measured_stages(spark, cfg, *plan[1], sampler, progress)
    return {"events": events, "users": cfg.generate.users, "tracks": cfg.generate.tracks,
            "generate_seconds": round(generated, 1), "stages": stages}, cfg


def compare_als(spark, cfg, day) -> dict:
    """The als stage's work (MLlib ALS fit + each user's top N as recommend takes them,
    models.als.top_scored) against implicit on the same matrix and parameters, fit + recommend for
    every user; MLlib's own recommendForAllUsers is timed on the same model for reference."""
    import numpy as np
    import scipy.sparse as sparse
    from implicit.als import AlternatingLeastSquares
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    from jobs.core.tables import SILVER_PLAYS
    from jobs.als import settings_for
    from models.als import AlsParams, top_scored
    conf, n = cfg.als, cfg.recommend.candidates_per_source
    params = AlsParams(conf.rank, conf.reg_param, conf.alpha, conf.confidence)
    settings = settings_for(spark, conf)  # as the als stage fits
    pairs = settings.interactions(delta_io.read(spark, cfg, SILVER_PLAYS), day, params.confidence).cache()
    local = pairs.select("user_idx", "track_idx", "confidence").toPandas()
    clock = time.monotonic()
    model = settings.fit(pairs, params)
    fit_s = time.monotonic() - clock
    top_scored(model, pairs.select("user_idx"), n).write.format("noop").mode("overwrite").save()
    spark_s = time.monotonic() - clock
    clock = time.monotonic()
    model.recommendForAllUsers(n).select(F.size("recommendations")).agg(F.sum("size(recommendations)")).first()
    mllib_topn_s = time.monotonic() - clock
    matrix = sparse.csr_matrix((local["confidence"].to_numpy(np.float32),
                                (local["user_idx"].to_numpy(), local["track_idx"].to_numpy())))
    clock = time.monotonic()
    als = AlternatingLeastSquares(factors=conf.rank, regularization=conf.reg_param, alpha=conf.alpha,
                                  iterations=conf.max_iter, random_state=conf.seed)
    als.fit(matrix, show_progress=False)
    implicit_fit_s = time.monotonic() - clock
    users = np.unique(local["user_idx"].to_numpy())
    als.recommend(users, matrix[users], N=n, filter_already_liked_items=False)
    implicit_s = time.monotonic() - clock
    pairs.unpersist()
    return {"pairs": len(local), "users": len(users), "rank": conf.rank, "iterations": conf.max_iter, "n": n,
            "spark_seconds": round(spark_s, 2), "spark_fit_seconds": round(fit_s, 2),
            "implicit_seconds": round(implicit_s, 2), "implicit_fit_seconds": round(implicit_fit_s, 2),
            "mllib_recommendForAllUsers_seconds": round(mllib_topn_s, 2), "ratio": round(spark_s / implicit_s, 1)}


DUCKDB_PASS = r"""
CREATE OR REPLACE TABLE lines AS
SELECT 'lastfm-tsv' AS format, filename AS source_file, line FROM read_csv({tsv}, columns={{'line': 'VARCHAR'}},
  delim=chr(1), quote='', escape='', header=false, filename=true, auto_detect=false, strict_mode=false)
UNION ALL
SELECT 'listenbrainz-jsonl', filename, line FROM read_csv({jsonl}, columns={{'line': 'VARCHAR'}}, delim=chr(1),
  quote='', escape='', header=false, filename=true, auto_detect=false, strict_mode=false);
CREATE OR REPLACE TABLE parsed AS
WITH f AS (
  SELECT *, string_split(line, chr(9)) AS t, CASE WHEN format = 'listenbrainz-jsonl' THEN json_valid(line) END AS ok,
    CASE WHEN format = 'listenbrainz-jsonl' AND json_valid(line) THEN line END AS j
  FROM lines)
SELECT format, source_file, line,
  CASE WHEN format = 'lastfm-tsv' AND len(t) <> 6 THEN 'wrong_column_count'
       WHEN format = 'listenbrainz-jsonl' AND NOT ok THEN 'malformed_json' END AS parse_error,
  trim(regexp_replace(CASE WHEN format = 'lastfm-tsv' THEN t[1] ELSE json_extract_string(j, '$.user_name') END,
       '\s+', ' ', 'g')) AS user_id,
  CASE WHEN format = 'lastfm-tsv' THEN try_strptime(trim(t[2]), '%Y-%m-%dT%H:%M:%SZ')
       ELSE to_timestamp(try_cast(json_extract_string(j, '$.listened_at') AS BIGINT))::TIMESTAMP END AS ts,
  CASE WHEN format = 'lastfm-tsv' THEN t[4] ELSE json_extract_string(j, '$.track_metadata.artist_name') END AS artist,
  CASE WHEN format = 'lastfm-tsv' THEN t[6] ELSE json_extract_string(j, '$.track_metadata.track_name') END AS track,
  lower(CASE WHEN format = 'lastfm-tsv' THEN t[5]
             ELSE json_extract_string(j, '$.track_metadata.additional_info.recording_mbid') END) AS mbid
FROM f;
CREATE OR REPLACE TABLE classified AS
SELECT *, coalesce(parse_error,
  CASE WHEN user_id IS NULL OR user_id = '' THEN 'empty_user'
       WHEN ts IS NULL THEN 'unparsable_timestamp'
       WHEN ts < TIMESTAMP '2002-01-01' THEN 'timestamp_before_floor'
       WHEN ts >= TIMESTAMP '{end}' THEN 'timestamp_after_run_date'
       WHEN coalesce(regexp_matches(mbid, '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'), false)
            = false AND coalesce(trim(track), '') = '' THEN 'missing_track' END) AS reason
FROM parsed;
COPY (SELECT format, source_file, line, reason FROM classified WHERE reason IS NOT NULL)
  TO '{out}/quarantine.parquet' (FORMAT parquet);
COPY (
  SELECT * EXCLUDE (n) FROM (
    SELECT user_id, ts, artist_name, track_name,
      coalesce(CASE WHEN regexp_matches(mbid, '^[0-9a-f]{{8}}-') THEN mbid END,
               'name:' || left(sha256(lower(artist_name) || chr(31) || lower(track_name)), 32)) AS track_id,
      row_number() OVER (PARTITION BY user_id, artist_name, track_name, ts ORDER BY source_file, line) AS n
    FROM (SELECT *, nullif(trim(regexp_replace(nfc_normalize(artist), '\s+', ' ', 'g')), '') AS artist_name,
                 nullif(trim(regexp_replace(nfc_normalize(track), '\s+', ' ', 'g')), '') AS track_name
          FROM classified WHERE reason IS NULL))
  WHERE n = 1) TO '{out}/plays.parquet' (FORMAT parquet);
"""


def compare_ingest_clean(cfg, stages: dict, days: int) -> dict:
    """ingest + clean (all days) against one DuckDB pass (2 threads) over the same raw files."""
    import duckdb
    out = Path(cfg.warehouse).parent / "duckdb"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    raw = Path(cfg.raw_path)

    def files(fmt: str) -> str:  # the data files setlist reads: hidden ones (.crc checksums) are not data
        return repr(sorted(str(f) for f in (raw / fmt).glob("*/*") if not f.name.startswith((".", "_"))))
    con = duckdb.connect()
    con.execute("SET threads = 2")
    clock = time.monotonic()
    con.execute(DUCKDB_PASS.format(tsv=files("lastfm-tsv"), jsonl=files("listenbrainz-jsonl"), out=out,
                                   end=(FIRST + dt.timedelta(days=days)).isoformat()))
    duck_s = time.monotonic() - clock
    plays = con.execute(f"SELECT count(*) FROM '{out}/plays.parquet'").fetchone()[0]
    lines = con.execute("SELECT count(*) FROM lines").fetchone()[0]
    setlist_s = stages["ingest"]["seconds"] + stages["clean"]["seconds"]
    return {"lines": lines, "duckdb_plays": plays, "setlist_seconds": round(setlist_s, 1),
            "duckdb_seconds": round(duck_s, 1), "ratio": round(setlist_s / duck_s, 1)}


def compare_embed(spark, cfg, day) -> dict:
    """gensim (corpus streamed to the driver) against MLlib's distributed Word2Vec on the same sessions."""
    from jobs.core import delta_io
    from jobs.core.paths import location
    from jobs.core.tables import SILVER_PLAYS
    from models.embeddings import Word2VecParams, train_word2vec
    from udfs.dates import plays_within
    plays = plays_within(delta_io.read(spark, cfg, SILVER_PLAYS), day, cfg.embed.history_days).cache()
    n = plays.count()
    seconds = {}
    for engine in ("gensim", "spark"):
        clock = time.monotonic()
        train_word2vec(spark, plays, engine, Word2VecParams.of(cfg.embed),
                       location(cfg, "scratch", "bench-embed", engine)).count()
        seconds[engine] = round(time.monotonic() - clock, 1)
    plays.unpersist()
    return {"plays": n, "gensim_seconds": seconds["gensim"], "spark_seconds": seconds["spark"],
            "ratio_spark_to_gensim": round(seconds["spark"] / seconds["gensim"], 2)}


def compare_recommend(spark, cfg, day, night_seconds: float) -> dict:
    """recommend's time for one night (night_seconds) against MLlib's bare recommendForAllUsers
    (top K for every user of the night's ALS model, written to Parquet)."""
    from pyspark.ml.recommendation import ALSModel

    from jobs.core import records
    row = records.latest_model(spark, cfg, "als", day)
    clock = time.monotonic()
    ALSModel.load(row["path"]).recommendForAllUsers(cfg.recommend.k).write.mode("overwrite").parquet(
        str(Path(cfg.warehouse).parent / "bare-recs"))
    bare = time.monotonic() - clock
    return {"recommend_seconds": round(night_seconds, 1), "recommendForAllUsers_seconds": round(bare, 1),
            "ratio": round(night_seconds / bare, 1)}


def compare_rebuild(spark, cfg, stages: dict, days: int, sampler) -> dict:
    """The last day's night (incremental) against a fresh warehouse rebuilt from all the days."""
    from jobs.core.config import with_overrides
    night = sum(v["seconds"] for v in stages.values()) - sum(stages[s]["seconds"] for s in ("ingest", "clean"))
    night = night / 2 + (stages["ingest"]["seconds"] + stages["clean"]["seconds"]) / days
    fresh = with_overrides(cfg, [f"warehouse={Path(cfg.warehouse).parent / 'rebuild'}"])
    shutil.rmtree(fresh.warehouse, ignore_errors=True)
    clock = time.monotonic()
    dates = [FIRST + dt.timedelta(days=i) for i in range(days)]
    plan = [(("ingest", "clean"), dates), (MODEL_STAGES, dates[-1:])]
    progress = stage_progress("full rebuild", plan)
    measured_stages(spark, fresh, *plan[0], sampler, progress)
    measured_stages(spark, fresh, *plan[1], sampler, progress)
    rebuild = time.monotonic() - clock
    return {"incremental_night_seconds": round(night, 1), "full_rebuild_seconds": round(rebuild, 1),
            "ratio": round(night / rebuild, 2)}


def slopes(ladder: list[dict]) -> dict:
    """Per stage: the log-log slope of seconds against events, and the time ratio per 10x events."""
    out = {}
    for stage in ladder[0]["stages"]:
        xs = [math.log(r["events"]) for r in ladder]
        ys = [math.log(max(r["stages"][stage]["seconds"], 1e-3)) for r in ladder]
        if len(xs) < 2:
            continue
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        out[stage] = {"slope": round(slope, 2), "time_per_10x_events": round(10 ** slope, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--workdir", default="/tmp/setlist-scale")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--compare-on", nargs=2, metavar=("WAREHOUSE", "DATE"),
                        help="only side-by-side comparisons (--only), on an existing warehouse for DATE; "
                             "recommend reruns DATE's recommend stage there (it writes: use a copy)")
    parser.add_argument("--only", nargs="+", choices=("als", "recommend"), default=["als", "recommend"])
    args = parser.parse_args()
    spark, base = session(["warehouse=/tmp/unused", "raw_path=/tmp/unused", "log_level=WARNING",
                           "spark.master=local[2]", "spark.conf.spark.ui.enabled=true",
                           "spark.conf.spark.ui.retainedStages=1000000", "spark.conf.spark.ui.retainedJobs=1000000",
                           "spark.conf.spark.driver.memory=10g", "spark.conf.spark.sql.shuffle.partitions=8",
                           "lease.enabled=false", "tracking.enabled=false", "als.tune_minutes=0",
                           "generate.files_per_day=4", *args.set])
    from models.progress import Progress
    LOG.setLevel(logging.INFO)
    if args.compare_on:
        from jobs import nightly
        from jobs.core.config import with_overrides
        cfg = with_overrides(base, [f"warehouse={args.compare_on[0]}"])
        day = dt.date.fromisoformat(args.compare_on[1])
        out = {}
        if "als" in args.only:
            out["als_vs_implicit"] = compare_als(spark, cfg, day)
        if "recommend" in args.only:
            clock = time.monotonic()
            nightly.run_stages(spark, cfg, day, ("recommend",), force=True)
            out["recommend_vs_recommendForAllUsers"] = compare_recommend(spark, cfg, day, time.monotonic() - clock)
        print(json.dumps(out, indent=1))
        spark.stop()
        return
    # each rung its own kind: a 10x larger rung is not timed by the smaller one's pace
    progress = Progress(LOG, "scale", total=len(args.events), unit="rungs",
                        kinds=[f"{events:,}-event" for events in args.events])
    sampler = HeapSampler(spark)
    master = spark.sparkContext.master  # local[N]: N cores; a cluster: the executors' task slots
    cores = (int(master[6:-1]) if master.startswith("local[") and master[6:-1].isdigit()
             else spark.sparkContext.defaultParallelism)
    ladder, report = [], {"cores": cores, "days": args.days}
    for events in args.events:
        workdir = Path(args.workdir) / str(events)
        shutil.rmtree(workdir, ignore_errors=True)
        result, cfg = rung(spark, base, events, args.days, workdir, sampler)
        ladder.append(result)
        print_rung(result, cores)
        progress.step(rows=events, what=f"{events:,} events")
    report["ladder"] = ladder
    report["slopes"] = slopes(ladder)
    print("\nslope of time against events (1.0 = linear) and time per 10x events:")
    for stage, values in report["slopes"].items():
        print(f"  {stage:<10} slope {values['slope']:>5}  x{values['time_per_10x_events']} per 10x")
    if args.compare:
        last = FIRST + dt.timedelta(days=args.days - 1)
        stages = ladder[-1]["stages"]
        report["compare"] = {"als_vs_implicit": compare_als(spark, cfg, last),
                             "embed_gensim_vs_mllib": compare_embed(spark, cfg, last),
                             "ingest_clean_vs_duckdb": compare_ingest_clean(cfg, stages, args.days),
                             "recommend_vs_recommendForAllUsers": compare_recommend(spark, cfg, last,
                                                                                  stages["recommend"]["seconds"] / 2),
                             "incremental_vs_rebuild": compare_rebuild(spark, cfg, stages, args.days, sampler)}
        print("\nside by side, on the largest rung:")
        for name, values in report["compare"].items():
            print(f"  {name:<36} {values}")
    Path(args.workdir, "scale.json").write_text(json.dumps(report, indent=1))
    spark.stop()


def print_rung(result: dict, cores: int) -> None:
    print(f"\n{result['events']:,} events ({result['users']:,} users, {result['tracks']:,} tracks; generated in "
          f"{result['generate_seconds']} s)")
    print(f"{'stage':<11}{'seconds':>9}{'rows':>12}{'rows/s':>10}{'rows/s/core':>13}{'shuffle MB':>12}"
          f"{'peak heap MB':>14}")
    for stage, v in result["stages"].items():
        rate = v["rows"] / v["seconds"] if v["rows"] and v["seconds"] else 0
        print(f"{stage:<11}{v['seconds']:>9.1f}{v['rows']:>12,}{rate:>10,.0f}{rate / cores:>13,.0f}"
              f"{v['shuffle_bytes'] / 1e6:>12.1f}{v['peak_heap'] / 1e6:>14.0f}")


if __name__ == "__main__":
    main()
