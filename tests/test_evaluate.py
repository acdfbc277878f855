"""evaluate: the lists of the night before, served and every configuration and source over the stored
candidates, scored against the next day's plays of the nightly warehouse; the regression flag."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from conftest import NIGHTS, rows_for
from jobs import evaluate
from jobs.core.tables import GOLD_METRICS


def test_evaluate_scores_the_served_lists_every_configuration_and_every_source(spark, nights):
    cfg, _ = nights
    day = NIGHTS[1]  # the lists of NIGHTS[0] against the plays of NIGHTS[1]
    results = evaluate.run(spark, cfg, day)
    note = results.pop("note")
    assert {"most_played", "blend", "als", "item2vec", "segment", "popularity", "served_yesterday"} <= set(results)
    assert "ranker" not in results  # no ranker could be trained for the first night
    stored = rows_for(spark, cfg, GOLD_METRICS, day).where(F.col("stage") == "evaluate")
    assert stored.select("model").distinct().count() == len(results)
    assert stored.where("metric = 'ndcg' AND k = 10").count() == len(results)
    for values in results.values():
        assert 0 <= values["ndcg"] <= 1 and 0 < values["coverage"] <= 1 and values["users"] > 0
    assert len({v["users"] for v in results.values()}) == 1  # every list is scored on the same users
    # on generated listening people replay their favourites: the most played beat global popularity
    assert results["most_played"]["ndcg"] > results["popularity"]["ndcg"]
    assert note.startswith("served ndcg@10")
    n = stored.count()
    evaluate.run(spark, cfg, day)
    assert rows_for(spark, cfg, GOLD_METRICS, day).where(F.col("stage") == "evaluate").count() == n


def test_a_served_list_below_the_most_played_is_flagged_as_a_regression():
    worse = {"served_yesterday": {"ndcg": 0.41}, "most_played": {"ndcg": 0.50}}
    better = {"served_yesterday": {"ndcg": 0.55}, "most_played": {"ndcg": 0.50}}
    assert "REGRESSION: below" in evaluate.regression_note(worse, 10)
    assert "REGRESSION" not in evaluate.regression_note(better, 10)
    assert "no served lists" in evaluate.regression_note({"most_played": {"ndcg": 0.5}}, 10)
    # the most played lists served, scored through the stored lists: equal up to summation order
    level = {"served_yesterday": {"ndcg": 0.3}, "most_played": {"ndcg": 0.1 + 0.2}}
    assert "REGRESSION" not in evaluate.regression_note(level, 10)
    slightly = {"served_yesterday": {"ndcg": 0.29999}, "most_played": {"ndcg": 0.3}}
    assert "REGRESSION: below" in evaluate.regression_note(slightly, 10)


def bench_module(name: str):
    """A bench script as a module (bench/ is not a package: its scripts import `_common` by name)."""
    import importlib
    import sys

    from conftest import ROOT
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module(name)


def test_a_dataset_in_lfm1b_dev_layout_is_read_from_any_folder_in_either_format(tmp_path):
    import json

    import pytest
    cut, quality = bench_module("cut_dataset"), bench_module("quality")
    src = tmp_path / "src"
    lines = {"2026-05-03": ["u1\t2026-05-03T10:00:00Z\t\tA\t\tOne", "u2\t2026-05-03T11:00:00Z\t\tB\t\tTwo"],
             "2026-05-04": ["u1\t2026-05-04T10:00:00Z\t\tA\t\tOne", "u1\t2026-05-04T10:03:00Z\t\tÉlan\t\tCafé  Noir"],
             "2026-05-05": ["u1\t2026-05-05T09:00:00Z\t\tA\t\tOne", "u2\t2026-05-05T09:30:00Z\t\tB\t\tNew one",
                            "u1\t2026-05-05T09:40:00Z\t\tA\t\tOne"]}
    for day, rows in lines.items():
        (src / "raw" / day).mkdir(parents=True)
        (src / "raw" / day / "listens.tsv").write_text("".join(r + "\n" for r in rows), encoding="utf-8")

    summary = cut.cut(src, tmp_path / "jsonl", dt.date(2026, 5, 5), jsonl=True)
    assert summary == {"days": 2, "last_train_date": "2026-05-04", "lines": 7, "held_out_users": 2}
    held, first, last, fmt = quality.days_layout(tmp_path / "jsonl")
    assert (first, last, fmt) == (dt.date(2026, 5, 3), dt.date(2026, 5, 4), "listenbrainz-jsonl")
    assert held["next_day_tracks"] == {"u1": ["One"], "u2": ["New one"]}  # each track once per user
    record = json.loads((tmp_path / "jsonl" / "raw" / "2026-05-04" / "listens.jsonl").read_text().splitlines()[1])
    assert record.pop("track_metadata") == {"artist_name": "Élan", "track_name": "Café  Noir"}  # as written
    assert record.pop("user_name") == "u1" and not record.keys() - {"listened_at"}
    assert dt.datetime.fromtimestamp(record["listened_at"], dt.timezone.utc).isoformat() == "2026-05-04T10:03:00+00:00"

    cut.cut(src, tmp_path / "tsv", dt.date(2026, 5, 4), jsonl=False)
    assert quality.days_layout(tmp_path / "tsv")[1:] == (dt.date(2026, 5, 3), dt.date(2026, 5, 3), "lastfm-tsv")

    with pytest.raises(quality.DatasetError, match="expected held_out.json and raw/"):
        quality.days_layout(src)  # no held_out.json
    (tmp_path / "tsv" / "raw" / "2026-05-03" / "more.jsonl").write_text("{}\n")
    with pytest.raises(quality.DatasetError, match=r"one format; found \['.jsonl', '.tsv'\]"):
        quality.days_layout(tmp_path / "tsv")
    (tmp_path / "jsonl" / "held_out.json").write_text(json.dumps({"last_train_date": "May 4"}))
    with pytest.raises(quality.DatasetError, match="held_out.json: needs last_train_date"):
        quality.days_layout(tmp_path / "jsonl")


def test_the_held_out_truth_matches_names_as_clean_stores_them(spark, nights):
    from jobs.core import delta_io
    from jobs.core.tables import SILVER_TRACKS, SILVER_USERS
    quality = bench_module("quality")
    cfg, _ = nights
    user = delta_io.read(spark, cfg, SILVER_USERS).orderBy("user_idx").first()
    tracks = delta_io.read(spark, cfg, SILVER_TRACKS).orderBy("track_idx").limit(2).collect()
    # as a held-out file may write them: padded id, other case, doubled inner space; and an unknown track
    named = [" " + tracks[0]["track_name"].upper() + " ", tracks[1]["track_name"].replace(" ", "  "),
             "never played before"]
    truth = quality.named_truth(spark, cfg, {f"  {user['user_id']} ": named, "nobody we know": ["x"]}).collect()
    assert len(truth) == 1 and truth[0]["user_idx"] == user["user_idx"]
    got = truth[0]["truth"]
    assert {tracks[0]["track_idx"], tracks[1]["track_idx"]} <= set(got)  # (a name other artists share counts too)
    assert len([t for t in got if t < 0]) == 1  # the unknown track: in the truth, never recommendable
