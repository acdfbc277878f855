"""Offline quality of the lists setlist serves, on a held-out day, per dataset.

    .venv/bin/python bench/quality.py --dataset lfm1b      [--workdir DIR] [--set key=value ...]
    .venv/bin/python bench/quality.py --dataset generated  [--seed 7] [--days 12] [--users 300]
    .venv/bin/python bench/quality.py --dataset movielens  [--buckets 30]

Runs the pipeline as a user would: `backfill` of every day up to the last training day (models, the
rank stage's choice and the lists for the last backfill.model_days days), so the lists of the last
day are exactly what `nightly` would serve; the held-out day is never ingested before they are
written. Then scores against what each user played on the held-out day (binary relevance, K =
evaluate.k): the served lists; every configuration the rank stage could choose (ranker, linear
blend, most played) and every single source over the same candidates; and an ablation: the ranker
retrained on the same training nights without each group of features; and the record of every night
the backfill evaluated (the evaluate stage's rows of gold.metrics: the lists served for each night
against the users' most played tracks, both scored on the day after it), which judges the rank
stage's choice on many days rather than one. Prints the tables and writes them as JSON under the
workdir; then the train stage's next-track scores of every night it trained. `--nights-only` prints
only these two records, of the workdir's existing warehouse.

Datasets:
- lfm1b: ../shared/data/lfm1b-dev (real LFM-1b sessions of 250 users, 28 days; held_out.json holds
  the tracks of day 29, which is never ingested), or with `--data DIR` any folder in its layout:
  `raw/<YYYY-MM-DD>/` of *.tsv (lastfm-tsv) or *.jsonl (listenbrainz-jsonl) files and held_out.json
  ({"last_train_date": D, "next_day_tracks": {user_id: [track names]}}); the backfill runs from the
  first day folder to last_train_date (`bench/cut_dataset.py` makes one from lfm1b-dev cut at an
  earlier day);
- generated: `generate` with planted taste (seeded), days+1 days; the last is the held-out day,
  ingested and cleaned only after the lists of the day before are written;
- movielens: MovieLens-100K (from the recbole 1.2.1 wheel on PyPI, cached) as implicit feedback,
  every rating one play, its 215 days compressed into `--buckets` days (+1 held out) so that a
  backfill takes minutes; each movie is its own artist.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from _common import ROOT, session

SHARED = ROOT.parent / "shared"
LFM1B = SHARED / "data" / "lfm1b-dev"
ML_CACHE = Path(os.environ.get("SETLIST_CACHE", Path.home() / ".cache" / "setlist")) / "data"
ABLATIONS = {
    "lstm": ("lstm_signal", "lstm_rank"),
    "als": ("als_signal", "als_rank"),
    "item2vec": ("item2vec_signal", "item2vec_rank"),
    "segment": ("segment_signal", "segment_rank"),
    "popularity": ("popularity_signal", "popularity_rank", "track_plays", "track_users", "track_plays_7d"),
    "history": ("history_signal", "history_rank", "plays", "plays_1d", "plays_7d", "days_since_last",
                "days_since_first", "active_days", "share", "in_last_session"),
    "recency": ("plays_1d", "plays_7d", "days_since_last", "in_last_session", "user_days_since_last"),
}


class DatasetError(ValueError):
    """A --data folder not laid out as lfm1b-dev is (the message names the folder or file)."""


def days_layout(data: Path) -> tuple[dict, dt.date, dt.date, str]:
    """A dataset laid out as ../shared/data/lfm1b-dev: `raw/<YYYY-MM-DD>/` with one day's listens
    (`*.tsv` in the lastfm-tsv format, or `*.jsonl` / `*.json` in the listenbrainz-jsonl one) and
    `held_out.json` ({"last_train_date": D, "next_day_tracks": {user_id: [track names]}}). Returns
    the held-out record, the first day with a folder, the last training day and the listen format."""
    held_file, raw = data / "held_out.json", data / "raw"
    if not held_file.is_file() or not raw.is_dir():
        raise DatasetError(f"--data {data}: expected held_out.json and raw/<YYYY-MM-DD>/ (the layout of {LFM1B})")
    try:
        held = json.loads(held_file.read_text())
        last = dt.date.fromisoformat(held["last_train_date"])
        if not isinstance(held["next_day_tracks"], dict):
            raise TypeError("next_day_tracks is not an object")
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{held_file}: needs last_train_date (YYYY-MM-DD) and next_day_tracks "
                           f"{{user_id: [track names]}}: {type(e).__name__}: {e}") from None
    days = []
    for folder in raw.iterdir():
        try:
            days.append(dt.date.fromisoformat(folder.name))
        except ValueError:
            continue
    if not days or min(days) > last:
        raise DatasetError(f"{raw}: no day folder named YYYY-MM-DD on or before last_train_date {last}")
    suffixes = {f.suffix for d in days if d <= last for f in (raw / d.isoformat()).iterdir() if f.is_file()}
    json_lines, tsv = suffixes & {".jsonl", ".json"}, suffixes & {".tsv"}
    if bool(json_lines) == bool(tsv):
        raise DatasetError(f"{raw}: the day folders must hold *.tsv (lastfm-tsv) or *.jsonl (listenbrainz-jsonl) "
                           f"files, one format; found {sorted(suffixes) or 'no files'}")
    return held, min(days), last, "listenbrainz-jsonl" if json_lines else "lastfm-tsv"


def lfm1b(args) -> tuple[list[str], dt.date, dt.date]:
    _, first, last, fmt = args.layout
    return ([f"raw_path={Path(args.data) / 'raw'}", f"ingest.formats=[{fmt}]", "ingest.layout='{date}'"],
            first, last)


def generated(args) -> tuple[list[str], dt.date, dt.date]:
    first = dt.date(2026, 1, 1)
    last = first + dt.timedelta(days=args.days - 1)
    return ([f"raw_path={args.workdir}/raw", f"generate.seed={args.seed}", f"generate.days={args.days + 1}",
             f"generate.end_date={last + dt.timedelta(days=1)}", f"generate.users={args.users}",
             f"generate.events={args.users * 25 * (args.days + 1)}", "generate.tracks=3000", "generate.artists=300"],
            first, last)


def movielens_file() -> Path:
    """ml-100k.inter from the recbole 1.2.1 wheel (PyPI), downloaded once into the setlist cache."""
    target = ML_CACHE / "ml-100k.inter"
    if target.exists():
        return target
    ML_CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "recbole==1.2.1", "-d",
                    str(ML_CACHE)], check=True)
    wheel = next(ML_CACHE.glob("recbole-1.2.1-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        target.write_bytes(z.read("recbole/dataset_example/ml-100k/ml-100k.inter"))
    return target


def movielens(args) -> tuple[list[str], dt.date, dt.date]:
    """MovieLens-100K as lastfm-tsv files, one folder per compressed day; the last is held out."""
    lines = movielens_file().read_text().splitlines()[1:]
    ratings = [(u, i, int(float(t))) for u, i, _, t in (line.split("\t") for line in lines)]
    lo, hi = min(r[2] for r in ratings), max(r[2] for r in ratings)
    span = (hi - lo + 1) / (args.buckets + 1)
    first = dt.date(2026, 3, 1)
    by_day: dict[dt.date, list[str]] = {}
    for user, item, ts in sorted(ratings, key=lambda r: r[2]):
        bucket = int((ts - lo) / span)
        day = first + dt.timedelta(days=bucket)
        second = int((ts - lo) - bucket * span) % 86400  # the clock within the day keeps the order
        stamp = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=second)
        by_day.setdefault(day, []).append(
            f"ml_user_{user}\t{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')}\t\tmovie {item}\t\tmovie {item}\n")
    raw = Path(args.workdir) / "raw"
    for day, rows in by_day.items():
        folder = raw / "lastfm-tsv" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ratings.tsv").write_text("".join(rows))
    return ([f"raw_path={raw}", "ingest.formats=[lastfm-tsv]"], first, first + dt.timedelta(days=args.buckets - 1))


def held_out_truth(spark, cfg, args, test_day: dt.date):
    """(user_idx, truth array<int>): what each user played on the held-out day."""
    from pyspark.sql import functions as F

    from jobs import clean, ingest
    from jobs.core import delta_io
    from jobs.core.tables import SILVER_PLAYS, SILVER_TRACKS, SILVER_USERS
    if args.dataset == "lfm1b":
        return named_truth(spark, cfg, args.layout[0]["next_day_tracks"])
    ingest.run(spark, cfg, test_day)
    clean.run(spark, cfg, test_day)
    played = delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("play_date") == F.lit(test_day))
    return played.groupBy("user_idx").agg(F.array_sort(F.collect_set("track_idx")).alias("truth"))


def named_truth(spark, cfg, next_day_tracks: dict):
    """(user_idx, truth array<int>) from {user_id: [track names]}: user ids and track names compared
    in the forms clean stores and compares them (ids trimmed with inner whitespace collapsed; names
    in clean.unicode_form, trimmed, case-folded). A name held by several artists' tracks counts as
    each of them (held_out.json names no artist); a track never played before the held-out day
    cannot be recommended, but it counts in the truth."""
    from pyspark.sql import functions as F

    from jobs.core import delta_io
    from jobs.core.tables import SILVER_TRACKS, SILVER_USERS
    from udfs.parse import user
    from udfs.text import name_key, normalize_name
    rows = [(str(user_id), str(track)) for user_id, tracks in next_day_tracks.items() for track in tracks]
    pairs = (spark.createDataFrame(rows, "user_id string, track_name string")
             .select(user(F.col("user_id")).alias("user_id"),
                     name_key(normalize_name(F.col("track_name"), cfg.clean.unicode_form)).alias("name"))
             .distinct())
    users = delta_io.read(spark, cfg, SILVER_USERS).select("user_id", "user_idx")
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).select(name_key(F.col("track_name")).alias("name"), "track_idx")
    named = (pairs.join(users, "user_id").join(tracks, "name", "left")
             .withColumn("track_idx", F.coalesce("track_idx", (-(F.abs(F.xxhash64("name")) % 2000000000) - 1)
                                                 .cast("int"))))
    return named.groupBy("user_idx").agg(F.array_sort(F.collect_set("track_idx")).alias("truth"))


def ratio(value: float, base: float) -> str:
    """value / base as "1.23x"; "above 0" where most played scored 0 (e.g. MovieLens: nobody rates a
    film twice, so a user's own most played films are never played again)."""
    if base != base:
        return "n/a"
    if not base:
        return "above 0" if value > 0 else "0 = 0"
    return f"{value / base:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=("lfm1b", "generated", "movielens"), required=True)
    parser.add_argument("--workdir")
    parser.add_argument("--data", default=str(LFM1B),
                        help="with --dataset lfm1b: a folder laid out as lfm1b-dev (raw/<YYYY-MM-DD>/ and "
                             "held_out.json), for real data that is not in ../shared (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--buckets", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="reuse the workdir's warehouse (resume a backfill)")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--nights-only", action="store_true",
                        help="run nothing: print the nights' records (served vs most played, next-track) "
                             "of the workdir's warehouse")
    args = parser.parse_args()
    args.data = str(Path(args.data).resolve())  # raw_path is read by Spark, whatever its working folder
    if args.dataset == "lfm1b":
        try:
            args.layout = days_layout(Path(args.data))
        except DatasetError as e:
            parser.exit(2, f"bench/quality.py: {e}\n")
    args.workdir = args.workdir or f"/tmp/setlist-bench-{args.dataset}" + (
        f"-{args.seed}" if args.dataset == "generated" else "")
    if args.nights_only:
        spark, cfg = session([f"warehouse={args.workdir}/warehouse", "spark.master=local[2]"])
        print_nights(served_nights(spark, cfg))
        print_next_track(next_track_record(spark, cfg))
        stored = Path(args.workdir, "quality.json")
        report = json.loads(stored.read_text()) if stored.exists() else {}
        print_replay(replay_guard(spark, cfg, report.get("results"), report.get("last_train_day")))
        spark.stop()
        return
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    overrides, first, last = {"lfm1b": lfm1b, "generated": generated, "movielens": movielens}[args.dataset](args)
    spark, cfg = session([f"warehouse={args.workdir}/warehouse", "log_level=INFO", "spark.master=local[2]",
                          "spark.conf.spark.sql.shuffle.partitions=4", "spark.conf.spark.driver.memory=6g",
                          *overrides, *args.set])
    from jobs import backfill, generate, rank
    from jobs.core import delta_io
    from jobs.core.tables import GOLD_CANDIDATES
    from jobs.evaluate import all_lists
    from models import ranker
    from models.features import FEATURES
    from models.scoring import score_lists
    started = time.monotonic()
    if args.dataset == "generated" and not args.keep:
        generate.run(spark, cfg)
    backfill.run(spark, cfg, first, last)
    backfill_s = time.monotonic() - started
    k = cfg.evaluate.k
    truth = held_out_truth(spark, cfg, args, last + dt.timedelta(days=1)).cache()
    from pyspark.sql import functions as F
    candidates = delta_io.read(spark, cfg, GOLD_CANDIDATES).where(F.col("run_date") == F.lit(last)).cache()
    results = {name: score_lists(lists, truth, k) for name, lists in all_lists(spark, cfg, last, candidates, k).items()}
    data = rank.learning_data(spark, cfg, last)
    ablation = {}
    if data.train is not None:
        train = data.train.cache()
        examples = train.count()
        variants = {"all features": FEATURES, "without the blend feature": tuple(f for f in FEATURES if f != "blend")}
        for group, dropped in ABLATIONS.items():
            variants[f"without {group}"] = tuple(f for f in FEATURES if f != "blend" and f not in dropped)
        for name, features in variants.items():
            model = rank.fit(spark, cfg, train, examples, features)[0]  # the stage's own engine choice
            valid = ranker.evaluate_configs(data.valid, data.valid_next, k, {"ranker": model})[0]["ranker"]["ndcg"]
            test = score_lists(ranker_lists(candidates, model, k), truth, k)
            ablation[name] = {"validation_ndcg": round(valid, 4), "test_ndcg": round(test["ndcg"], 4),
                              "test_recall": round(test["recall"], 4), "test_hit_rate": round(test["hit_rate"], 4)}
    served_row = ranker_choice(spark, cfg, last)
    report = {"dataset": args.dataset, "last_train_day": last.isoformat(), "k": k, "users": truth.count(),
              "backfill_seconds": round(backfill_s), "rank_choice": served_row, "results": results,
              "ablation": ablation, "stage_seconds": stage_seconds(spark, cfg, first, last), "overrides": args.set,
              "served_nights": served_nights(spark, cfg), "next_track": next_track_record(spark, cfg)}
    report["guard_replay"] = replay_guard(spark, cfg, results, last.isoformat())
    print_report(report)
    print_nights(report["served_nights"])
    print_next_track(report["next_track"])
    print_replay(report["guard_replay"])
    Path(args.workdir, "quality.json").write_text(json.dumps(report, indent=1, default=str))
    spark.stop()


def stage_seconds(spark, cfg, first, last) -> dict:
    """Per stage, from gold.runs: seconds of the last night, and the median over the nights it ran."""
    import statistics

    from jobs.core import delta_io
    from jobs.core.tables import GOLD_RUNS
    rows = delta_io.read(spark, cfg, GOLD_RUNS).where("status = 'succeeded'").collect()
    out = {}
    for row in rows:
        timing = json.loads(row["rows"] or "{}").get("timing", {})
        if "seconds" in timing and first <= row["run_date"] <= last:
            out.setdefault(row["stage"], {})[row["run_date"].isoformat()] = timing["seconds"]
    return {stage: {"last_night": by_day.get(last.isoformat()), "median": round(statistics.median(by_day.values()), 1),
                    "nights": len(by_day)} for stage, by_day in out.items()}


def served_nights(spark, cfg) -> dict:
    """The record of every night the backfill evaluated (the evaluate stage's gold.metrics rows; the
    row of run date D scores night N = D - evaluate.test_days on the plays of (N, D]): NDCG@k of the
    lists served for N against the users' most played tracks over the same candidates, night by
    night, and over all of them (weighted by the users scored); with what the blend and the ranker of
    the night (served or not) scored there."""
    from jobs.core import delta_io
    from jobs.core.tables import GOLD_METRICS
    from jobs.evaluate import SERVED
    lag = dt.timedelta(days=cfg.evaluate.test_days)
    rows = (delta_io.read(spark, cfg, GOLD_METRICS)
            .where("stage = 'evaluate' AND metric = 'ndcg' AND model IN ('most_played', 'blend', 'ranker', "
                   "'served_yesterday')")
            .select("run_date", "model", "value", "users").collect())
    by_night: dict[str, dict] = {}
    for row in rows:
        night = by_night.setdefault((row["run_date"] - lag).isoformat(),
                                    {"scored_through": row["run_date"].isoformat(), "users": int(row["users"])})
        night["served" if row["model"] == SERVED else row["model"]] = round(float(row["value"]), 4)
    nights = {d: v for d, v in sorted(by_night.items()) if "served" in v and "most_played" in v}
    users = sum(v["users"] for v in nights.values())
    mean = {name: round(sum(v[name] * v["users"] for v in nights.values()) / users, 4) if users else None
            for name in ("served", "most_played")}
    return {"nights": nights, "below_most_played": [d for d, v in nights.items() if v["served"] < v["most_played"]],
            "user_weighted_mean": mean}


def print_nights(record: dict) -> None:
    print("\nevery night the backfill evaluated (gold.metrics, stage evaluate): ndcg of the lists served for "
          "the night vs the users' most played, on the plays after it")
    for night, v in record["nights"].items():
        print(f"  {night} (scored through {v['scored_through']}, {v['users']:>4} users)  served {v['served']:.4f}  "
              f"most played {v['most_played']:.4f}  {ratio(v['served'], v['most_played']):>6}  "
              + "  ".join(f"{name} {v[name]:.4f}" for name in ("blend", "ranker") if name in v))
    mean = record["user_weighted_mean"]
    if mean["served"] is not None:
        print(f"  over {len(record['nights'])} nights (user-weighted): served {mean['served']:.4f}, most played "
              f"{mean['most_played']:.4f} ({ratio(mean['served'], mean['most_played'])}); below most played on "
              f"{len(record['below_most_played'])}: {', '.join(record['below_most_played']) or 'none'}")


def replay_guard(spark, cfg, held_out: dict | None = None, last: str | None = None,
                 options: tuple[int, ...] = (1, 2, 3, 4)) -> dict:
    """The rank stage's choice of every night replayed under each rank.record_nights in `options`:
    jobs.rank.choose on the night's stored validation scores and confidence (its gold.models row)
    and jobs.rank.earlier_record read from this warehouse; each choice scored by what that
    configuration's lists of the night scored on the day after (the evaluate stage's rows), or on
    the held-out day for the night `last` (held_out: the report's results). Nothing is refitted:
    the rank stage's choice does not feed back into later nights' candidates or rankers."""
    from jobs import rank
    from jobs.core import delta_io
    from jobs.core.config import with_overrides
    from jobs.core.tables import GOLD_MODELS
    nights = served_nights(spark, cfg)["nights"]
    stored = {}
    for row in delta_io.read(spark, cfg, GOLD_MODELS).where("model = 'ranker'").collect():
        stored[row["run_date"].isoformat()] = (json.loads(row["metrics"]), json.loads(row["params"]))
    out = {}
    for option in options:
        conf = with_overrides(cfg, [f"rank.record_nights={option}"])
        rows = {}
        for day, (metrics, params) in sorted(stored.items()):
            valid = dt.date.fromisoformat(params["validation_night"])
            choice = rank.choose(metrics["validation"], metrics["confidence_over_most_played"],
                                 params.get("min_gain", cfg.rank.min_gain), cfg.rank.confidence, valid,
                                 cfg.evaluate.k, rank.earlier_record(spark, conf, valid))[0]
            if day == last and held_out:
                scores = {name: held_out[name]["ndcg"] for name in ("most_played", *rank.CHALLENGERS)
                          if name in held_out}
                users = held_out["most_played"]["users"]
            elif day in nights and choice in nights[day]:
                scores, users = nights[day], nights[day]["users"]
            else:
                continue
            rows[day] = {"stored": metrics["served"], "choice": choice, "ndcg": scores[choice],
                         "most_played": scores["most_played"], "users": users, "held_out": day == last}
        evaluated = [v for v in rows.values() if not v["held_out"]]
        users = sum(v["users"] for v in evaluated)
        out[option] = {"nights": rows, "evaluated": len(evaluated),
                       "below_most_played": [d for d, v in rows.items()
                                             if v["ndcg"] < v["most_played"] and not v["held_out"]],
                       "user_weighted": {name: round(sum(v[name] * v["users"] for v in evaluated) / users, 4)
                                         if users else None for name in ("ndcg", "most_played")}}
    return out


def print_replay(replay: dict) -> None:
    print("\nthe rank stage's choices replayed under rank.record_nights (stored validation scores; each choice "
          "scored on the day after its night, or on the held-out day)")
    for option, v in replay.items():
        mean, held = v["user_weighted"], [(d, n) for d, n in v["nights"].items() if n["held_out"]]
        switched = [f"{d} {n['stored']}->{n['choice']} ({n['ndcg']:.4f} vs most played {n['most_played']:.4f})"
                    for d, n in v["nights"].items() if n["choice"] != n["stored"]]
        print(f"  record_nights={option}: over {v['evaluated']} evaluated nights (user-weighted) served "
              f"{mean['ndcg']:.4f}, most played {mean['most_played']:.4f} ({ratio(mean['ndcg'], mean['most_played'])}); "
              f"below most played: {', '.join(v['below_most_played']) or 'none'}"
              + "".join(f"; held-out {d}: {n['choice']} {n['ndcg']:.4f} vs {n['most_played']:.4f}" for d, n in held))
        if switched:
            print(f"    unlike what was served: {'; '.join(switched)}")


def next_track_record(spark, cfg) -> dict:
    """The train stage's next-track scores of every night it trained (gold.metrics rows of models
    `next_track:<source>`: hit rate and NDCG@k of the LSTM and its baselines on the night's
    validation examples): {night: {source: {metric: value}, "examples": n}}."""
    from jobs.core import delta_io
    from jobs.core.tables import GOLD_METRICS
    rows = (delta_io.read(spark, cfg, GOLD_METRICS).where("stage = 'train' AND model LIKE 'next_track:%'")
            .select("run_date", "model", "metric", "value", "users").collect())
    out: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: (r["run_date"], r["model"])):
        night = out.setdefault(row["run_date"].isoformat(), {"examples": int(row["users"])})
        night.setdefault(row["model"].split(":", 1)[1], {})[row["metric"]] = round(float(row["value"]), 4)
    return out


def print_next_track(record: dict) -> None:
    print("\nnext-track quality of every night the train stage ran (gold.metrics, stage train; hit rate@k / ndcg@k "
          "on the night's validation examples)")
    for night, v in record.items():
        scores = "  ".join(f"{name} {m['hit_rate']:.4f}/{m['ndcg']:.4f}" for name, m in v.items() if name != "examples")
        print(f"  {night} ({v['examples']} examples)  {scores}")


def ranker_lists(candidates, model, k):
    from models import ranker
    from models.scoring import ranked_lists
    return ranked_lists(ranker.score_config(candidates, "ranker", model), k)


def ranker_choice(spark, cfg, day):
    from jobs.core import records
    row = records.latest_model(spark, cfg, "ranker", day)
    if row is None:
        return None
    metrics = json.loads(row["metrics"])
    return {"run_date": str(row["run_date"]), "served": metrics["served"], "why": metrics["why"],
            "importance": metrics.get("importance")}


def print_report(report: dict) -> None:
    k, results = report["k"], report["results"]
    base = results.get("most_played", {}).get("ndcg") or float("nan")
    print(f"\n{report['dataset']}: the lists of {report['last_train_day']} against the held-out day "
          f"({report['users']} users, K = {k}; backfill {report['backfill_seconds']} s)")
    if report["rank_choice"]:
        print(f"rank stage: {report['rank_choice']['why']}")
    print(f"{'lists':<28}{'ndcg@' + str(k):>10}{'recall@' + str(k):>12}{'hit@' + str(k):>10}{'vs most_played':>16}")
    for name, values in results.items():
        print(f"{name:<28}{values['ndcg']:>10.4f}{values['recall']:>12.4f}{values['hit_rate']:>10.4f}"
              f"{ratio(values['ndcg'], base):>16}")
    print("\nseconds per stage (gold.runs): the last night, and the median over the nights it ran")
    for stage, v in report["stage_seconds"].items():
        print(f"  {stage:<10} last night {v['last_night']!s:>7}  median {v['median']:>7} over {v['nights']} night(s)")
    if report["ablation"]:
        print(f"\nablation (the ranker retrained on the same nights):\n{'variant':<28}{'valid ndcg':>12}{'test ndcg':>11}"
              f"{'test recall':>13}")
        for name, values in report["ablation"].items():
            print(f"{name:<28}{values['validation_ndcg']:>12.4f}{values['test_ndcg']:>11.4f}"
                  f"{values['test_recall']:>13.4f}")


if __name__ == "__main__":
    main()
