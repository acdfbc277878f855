"""A dataset in lfm1b-dev's layout cut at an earlier held-out day, optionally as ListenBrainz JSON lines.

    .venv/bin/python bench/cut_dataset.py SRC DEST --held-out YYYY-MM-DD [--jsonl]

SRC is a folder laid out as ../shared/data/lfm1b-dev (`raw/<YYYY-MM-DD>/*.tsv` in the lastfm-tsv
format). DEST gets the days of SRC before the held-out day, the held-out day's own folder (present,
as in lfm1b-dev, and never ingested by `bench/quality.py`) and a `held_out.json` naming, for every
user, the track names played on the held-out day. With --jsonl every line is written as a
listenbrainz-jsonl record (`user_name`, `listened_at` in epoch seconds, `track_metadata` with the
artist and track names), so the other input format runs the same benchmark.

This gives `bench/quality.py --dataset lfm1b --data DEST` more than one held-out day of real data
to judge a default on (the shipped held-out day of lfm1b-dev is unlike the days before it: README,
"lfm1b-dev falls short").
"""
from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import sys
from pathlib import Path


def json_line(fields: list[str]) -> str:
    user, stamp, _, artist, _, track = (fields + [""] * 6)[:6]
    when = calendar.timegm(dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").timetuple())
    return json.dumps({"user_name": user, "listened_at": when,
                       "track_metadata": {"artist_name": artist, "track_name": track}}, ensure_ascii=False) + "\n"


def cut(src: Path, dest: Path, held_out: dt.date, jsonl: bool) -> dict:
    days = sorted(d for d in (src / "raw").iterdir() if d.is_dir())
    kept = [d for d in days if dt.date.fromisoformat(d.name) <= held_out]
    if not any(d.name == held_out.isoformat() for d in kept):
        raise SystemExit(f"bench/cut_dataset.py: {src / 'raw'} has no folder {held_out.isoformat()}")
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"bench/cut_dataset.py: {dest} is not empty")
    truth: dict[str, list[str]] = {}
    lines = 0
    for day in kept:
        folder = dest / "raw" / day.name
        folder.mkdir(parents=True)
        for source in sorted(day.glob("*.tsv")):
            rows = [line.rstrip("\n").split("\t") for line in source.read_text(encoding="utf-8").splitlines() if line]
            lines += len(rows)
            if day.name == held_out.isoformat():
                for fields in rows:
                    played = truth.setdefault(fields[0], [])
                    if len(fields) > 5 and fields[5] not in played:
                        played.append(fields[5])
            if jsonl:
                (folder / (source.stem + ".jsonl")).write_text("".join(json_line(f) for f in rows), encoding="utf-8")
            else:
                (folder / source.name).write_text("".join("\t".join(f) + "\n" for f in rows), encoding="utf-8")
    last = held_out - dt.timedelta(days=1)
    (dest / "held_out.json").write_text(json.dumps({"last_train_date": last.isoformat(), "next_day_tracks": truth}))
    return {"days": len(kept) - 1, "last_train_date": last.isoformat(), "lines": lines, "held_out_users": len(truth)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--held-out", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--jsonl", action="store_true")
    args = parser.parse_args()
    print(json.dumps(cut(args.src, args.dest, args.held_out, args.jsonl)), file=sys.stdout)


if __name__ == "__main__":
    main()
