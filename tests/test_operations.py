"""Fault injection under real operations (issue 10): concurrent runs as separate OS processes, a
SIGKILL at a commit point, a scheduler's SIGTERM to submit.sh, re-delivered and late files, hostile
files in a date folder, hostile bytes. Every run here is a real process or a real file on real Spark
and Delta tables."""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from conftest import ROOT, command_lines, small_generate
from jobs import clean, generate, ingest
from jobs.core import delta_io
from jobs.core.config import as_dict, with_overrides
from jobs.core.rawfiles import raw_dir
from jobs.core.tables import (BRONZE_LISTENS, SILVER_CLEAN_RUNS, SILVER_PLAYS, SILVER_QUARANTINE, SILVER_TRACKS,
                              SILVER_USERS)
from udfs import quality as Q

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
SILVER = (SILVER_PLAYS, SILVER_USERS, SILVER_TRACKS, SILVER_QUARANTINE)


def conf_file(cfg, path: Path) -> Path:
    """The config as a YAML file, for jobs run as their own processes."""
    data = as_dict(cfg)
    data["spark"]["conf"]["spark.driver.memory"] = "1g"
    path.write_text(yaml.safe_dump(data))
    return path


def job(conf: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable}
    return subprocess.Popen([sys.executable, str(ROOT / "jobs" / "main.py"), *args, "--conf", str(conf)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def rows(spark, cfg, table, drop=("finished_at",)):
    df = delta_io.read(spark, cfg, table)
    return sorted(tuple(r) for r in df.drop(*[c for c in drop if c in df.columns]).collect())


def lines_file(cfg, fmt: str, day: dt.date, name: str, lines: list[str] | bytes) -> Path:
    path = Path(raw_dir(cfg, fmt, day)) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lines if isinstance(lines, bytes) else "".join(f"{x}\n" for x in lines).encode())
    return path


def tsv(user: str, when: str, artist: str, track: str) -> str:
    return "\t".join([user, when, "", artist, "", track])


@pytest.fixture(scope="module")
def two_days(spark, base_cfg, tmp_path_factory):
    """Raw logs of two generated days whose users and tracks overlap, shared read-only."""
    root = tmp_path_factory.mktemp("operations")
    cfg = with_overrides(base_cfg, [f"raw_path={root / 'raw'}", *small_generate(days=2, users=25, events=900,
                                                                                   dirty=0.02)])
    generate.run(spark, cfg)
    return cfg


def warehouse(two_days, tmp_path, name="wh"):
    return with_overrides(two_days, [f"warehouse={tmp_path / name}"])


def test_two_concurrent_cleans_keep_ids_one_to_one(spark, two_days, tmp_path):
    cfg = warehouse(two_days, tmp_path)
    for day in (D1, D2):
        ingest.run(spark, cfg, day)
    conf = conf_file(cfg, tmp_path / "c.yaml")
    procs = [job(conf, "clean", "--date", str(day)) for day in (D1, D2)]  # the same moment, two processes
    results = [finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
    for table, key, idx in ((SILVER_USERS, "user_id", "user_idx"), (SILVER_TRACKS, "track_id", "track_idx")):
        ids = delta_io.read(spark, cfg, table)
        assert ids.count() == ids.select(key).distinct().count() == ids.select(idx).distinct().count()
        assert sorted(r[0] for r in ids.select(idx).collect()) == list(range(1, ids.count() + 1))
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    assert plays.select("user_id", "user_idx").distinct().count() == plays.select("user_id").distinct().count()
    assert not (Path(cfg.warehouse) / "_lease").exists()


def test_a_busy_warehouse_exits_4_and_a_dead_holders_lease_is_taken_over(spark, two_days, tmp_path):
    cfg = warehouse(two_days, tmp_path)
    lease = Path(cfg.warehouse) / "_lease"
    lease.parent.mkdir(parents=True)
    holder = subprocess.Popen(["sleep", "120"])
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    lease.write_text(json.dumps({"job": "nightly", "pid": holder.pid, "host": os.uname().nodename, "boot_id": boot,
                                 "since": "2026-01-01T03:00:00+00:00", "token": "t1"}))
    busy = with_overrides(cfg, ["lease.wait_minutes=0"])
    code, err = finish(job(conf_file(busy, tmp_path / "c.yaml"), "clean", "--date", str(D1)))
    assert code == 4
    assert err.strip().splitlines()[-1].startswith(f"setlist clean: error: warehouse {cfg.warehouse} is busy: "
                                                   f"nightly holds it (pid {holder.pid} on")
    holder.send_signal(signal.SIGKILL)  # the holder dies without releasing its lease
    holder.wait()
    code, err = finish(job(conf_file(busy, tmp_path / "c.yaml"), "clean", "--date", str(D1)))
    assert code == 3 and "table bronze.listens does not exist" in err  # it got past the lease
    assert "is gone; taking it over" in err and not lease.exists()


def test_a_clean_killed_at_a_commit_point_reruns_to_the_uninterrupted_tables(spark, two_days, tmp_path):
    reference = warehouse(two_days, tmp_path, "reference")
    ingest.run(spark, reference, D1)
    clean.run(spark, reference, D1)
    cfg = warehouse(two_days, tmp_path, "killed")
    ingest.run(spark, cfg, D1)
    conf = conf_file(cfg, tmp_path / "c.yaml")
    proc = job(conf, "clean", "--date", str(D1))
    tracks_log = Path(SILVER_TRACKS.path(cfg)) / "_delta_log"
    deadline = time.monotonic() + 240
    while not (tracks_log / "00000000000000000001.json").exists():  # the new ids are committed
        assert proc.poll() is None and time.monotonic() < deadline, "clean ended before its ids were committed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not delta_io.exists(spark, cfg, SILVER_CLEAN_RUNS) or \
        delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).count() == 0  # not marked cleaned
    code, err = finish(job(conf, "clean", "--date", str(D1)))
    assert code == 0, err[-3000:]
    for table in (*SILVER, SILVER_CLEAN_RUNS):
        assert rows(spark, cfg, table) == rows(spark, reference, table), table.full_name


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command's name (state, ppid, ...); None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> set[int]:
    """The pids of `root` and every process below it (by parent pid, read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def test_a_stop_request_to_submit_sh_stops_the_whole_run_and_exits_143(spark, two_days, tmp_path):
    """A scheduler stops a run by signalling the process it started, submit.sh, with SIGTERM. The
    signal must reach the Spark application: no process of the run outlives it (before, bash died
    alone and the JVM, its driver and its workers went on, orphaned, holding the warehouse's lease),
    and the exit code says the run was stopped (143 = 128 + SIGTERM). Run as a scheduler would,
    without SPARK_LOCAL_IP: submit.sh gives a local master the config's bind address, so Spark does
    not warn that the host's name resolves to a loopback address; nor does the log carry Spark's
    known noise."""
    cfg = warehouse(two_days, tmp_path)
    ingest.run(spark, cfg, D1)
    conf = conf_file(cfg, tmp_path / "c.yaml")
    assert cfg.spark.master.startswith("local") and cfg.spark.conf["spark.driver.bindAddress"] == "127.0.0.1"
    env = {k: v for k, v in os.environ.items() if k != "SPARK_LOCAL_IP"} | {"SETLIST_PYTHON": sys.executable}
    with (tmp_path / "run.log").open("w") as log:
        proc = subprocess.Popen([str(ROOT / "submit.sh"), "clean", "--date", str(D1), "--conf", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=env)
    tree: set[int] = set()
    try:
        tracks_log = Path(SILVER_TRACKS.path(cfg)) / "_delta_log"
        deadline = time.monotonic() + 240
        while not (tracks_log / "00000000000000000001.json").exists():  # mid-stage: the new ids are committed
            assert proc.poll() is None and time.monotonic() < deadline, "clean ended before its ids were committed"
            time.sleep(0.05)
        tree = process_tree(proc.pid) - {proc.pid}
        assert len(tree) >= 2  # spark-submit's JVM and the driver's Python, at least
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        deadline = time.monotonic() + 30
        while [pid for pid in tree if running(pid)]:
            assert time.monotonic() < deadline, f"processes outlived the stopped run (exit code {code}): " + \
                "; ".join(command_lines().get(p, "?")[:120] for p in tree if running(p))
            time.sleep(0.5)
        # stopped, so not marked cleaned (before, the orphaned run went on and finished the date)
        marked = delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).count() if delta_io.exists(spark, cfg,
                                                                                        SILVER_CLEAN_RUNS) else 0
        assert marked == 0, f"the stopped run (exit code {code}) went on and marked the date cleaned"
        output = (tmp_path / "run.log").read_text()
        assert code == 143, output[-3000:]
        assert "resolves to a loopback address" not in output and "SPARK_LOCAL_IP" not in output
        assert "Truncated the string representation of a plan" not in output  # known noise, conf/log4j2.properties
        lease = Path(cfg.warehouse) / "_lease"
        assert not lease.exists() or not running(json.loads(lease.read_text())["pid"])
    finally:
        for pid in tree | {proc.pid}:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_redelivered_file_adds_its_changed_lines_and_clean_reads_the_newest(spark, cfg):
    first = [tsv("u1", "2026-01-01T10:00:00Z", "A", "One"), tsv("u1", "2026-01-01T10:04:00Z", "A", "Tow"),
             "u1\t2026-01-01T10:08:00Z\t\tA"]  # the last line was cut off mid-write
    lines_file(cfg, "lastfm-tsv", D1, "part-1.tsv", first)
    assert ingest.run(spark, cfg, D1)["lastfm-tsv"]["inserted"] == 3
    clean.run(spark, cfg, D1)
    assert [r["reason"] for r in delta_io.read(spark, cfg, SILVER_QUARANTINE).collect()] == [Q.WRONG_COLUMN_COUNT]
    second = [first[0], tsv("u1", "2026-01-01T10:04:00Z", "A", "Two"), tsv("u1", "2026-01-01T10:08:00Z", "A", "Three")]
    lines_file(cfg, "lastfm-tsv", D1, "part-1.tsv", second)  # re-delivered: one line corrected, one completed
    again = ingest.run(spark, cfg, D1)["lastfm-tsv"]
    assert (again["read"], again["inserted"], again["already_ingested"]) == (3, 2, 1)
    assert delta_io.read(spark, cfg, BRONZE_LISTENS).count() == 5  # the replaced versions stay, for lineage
    summary = clean.run(spark, cfg, D1)
    assert (summary["bronze_rows"], summary["plays"], summary["quarantined"], summary["replaced"]) == (3, 3, 0, 2)
    assert sorted(r["track_name"] for r in delta_io.read(spark, cfg, SILVER_PLAYS).collect()) == ["One", "Three", "Two"]
    assert delta_io.read(spark, cfg, SILVER_QUARANTINE).count() == 0


def test_every_entry_of_a_date_folder_is_read_or_reported_and_raw_path_is_literal(spark, base_cfg, tmp_path):
    cfg = with_overrides(base_cfg, [f"warehouse={tmp_path / 'wh'}", f"raw_path={tmp_path / 'raw[x]*'}"])
    good = [tsv("u1", "2026-01-01T10:00:00Z", "A", "One"), tsv("u2", "2026-01-01T11:00:00Z", "B", "Two")]
    lines_file(cfg, "lastfm-tsv", D1, "good.tsv", good)
    lines_file(cfg, "lastfm-tsv", D1, "nested/deeper/more.tsv", good[:1])
    lines_file(cfg, "lastfm-tsv", D1, "packed.tsv.gz", gzip.compress("\n".join(good).encode() + b"\n"))
    lines_file(cfg, "lastfm-tsv", D1, "cut.tsv.gz", gzip.compress(("\n".join(good * 50) + "\n").encode())[:60])
    lines_file(cfg, "lastfm-tsv", D1, ".partial.tsv", good)
    lines_file(cfg, "lastfm-tsv", D1, "_SUCCESS", b"")
    lines_file(cfg, "lastfm-tsv", D1, "archive.zip", b"PK\x03\x04rest-of-a-zip")
    outside = tmp_path / "elsewhere.tsv"
    outside.write_text(good[0] + "\n")
    (Path(raw_dir(cfg, "lastfm-tsv", D1)) / "link.tsv").symlink_to(outside)
    summary = ingest.run(spark, cfg, D1)
    got = summary["lastfm-tsv"]
    assert (got["files"], got["read"], got["inserted"]) == (3, 5, 5)
    reasons = {Path(s["file"]).name: s["reason"] for s in got["skipped"]}
    assert set(reasons) == {"cut.tsv.gz", ".partial.tsv", "_SUCCESS", "archive.zip", "link.tsv"}
    assert reasons["cut.tsv.gz"].startswith("corrupt gzip stream")
    assert reasons["archive.zip"].startswith("unsupported archive")
    assert reasons["link.tsv"].startswith("symlink leaving raw_path")
    assert reasons["_SUCCESS"].startswith("hidden")
    assert summary["missing_formats"] == ["listenbrainz-jsonl"]


def test_a_late_play_is_kept_once_whichever_night_is_cleaned_again(spark, cfg):
    late = tsv("u1", "2026-01-01T23:50:00Z", "A", "Late")  # played on D1, delivered on D2
    lines_file(cfg, "lastfm-tsv", D1, "d1.tsv", [tsv("u1", "2026-01-01T10:00:00Z", "A", "Early")])
    lines_file(cfg, "lastfm-tsv", D2, "d2.tsv", [late, tsv("u1", "2026-01-02T09:00:00Z", "A", "Next")])
    for day in (D1, D2):
        ingest.run(spark, cfg, day)
        clean.run(spark, cfg, day)
    lines_file(cfg, "lastfm-tsv", D1, "d1-resent.tsv", [late])  # D1 re-delivered with the late play
    ingest.run(spark, cfg, D1)
    summary = clean.run(spark, cfg, D1)  # an earlier night cleaned again after a later one
    assert summary["duplicates"] == 1
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    assert plays.where(F.col("track_name") == "Late").count() == 1
    assert clean.run(spark, cfg, D2)["duplicates"] == 0  # and the later night keeps it
    assert delta_io.read(spark, cfg, SILVER_PLAYS).where(F.col("track_name") == "Late").count() == 1


def test_the_reconciliation_counts_what_was_committed_and_can_fail(spark, cfg, monkeypatch):
    lines_file(cfg, "lastfm-tsv", D1, "d1.tsv", [tsv("u1", "2026-01-01T10:00:00Z", "A", "One"),
                                                 tsv("u2", "2026-01-01T10:00:00Z", "A", "One")])
    ingest.run(spark, cfg, D1)
    real = clean.sessionize
    monkeypatch.setattr(clean, "sessionize", lambda plays, gap, tail=None, **kw: real(plays, gap, tail, **kw).where(
        F.col("user_id") != "u2"))  # a bug that loses a play on its way to the table
    with pytest.raises(RuntimeError, match="counts do not reconcile: bronze 2 != plays 1 "):
        clean.run(spark, cfg, D1)
    assert not delta_io.exists(spark, cfg, SILVER_CLEAN_RUNS)  # the date is not marked cleaned


def test_hostile_values_and_bytes_are_quarantined_with_a_reason_and_readable_everywhere(spark, cfg):
    cfg = with_overrides(cfg, ["alerts.quarantine_rate=[0.5, 1.01]"])  # a file of mostly hostile lines, on purpose

    def lb(**fields):
        record = {"user_name": "lb", "listened_at": 1767261600,
                  "track_metadata": {"artist_name": "A", "track_name": "T", "additional_info": {}}}
        return json.dumps({**record, **fields}).encode()
    raw = b"\n".join([
        lb(), lb(listened_at=1000000000000000), lb(listened_at=1767261600000), lb(user_name=123),
        lb(track_metadata={"artist_name": "A", "track_name": {"id": 7}}),
        b'{"user_name": "lb", "listened_at": 1767261660, "track_metadata": {"artist_name": "Caf\xe9", '
        b'"track_name": "T"}}',
        lb(user_name="lb\u00a0 "), lb(user_name="\u3000lb", listened_at=1767261720)]) + b"\n"
    lines_file(cfg, "listenbrainz-jsonl", D1, "hostile.jsonl", raw)
    ingest.run(spark, cfg, D1)
    summary = clean.run(spark, cfg, D1)  # one bad value never stops the night
    reasons = {r["line_number"]: r["reason"] for r in delta_io.read(spark, cfg, SILVER_QUARANTINE).collect()}
    assert reasons == {2: Q.TIMESTAMP_OUT_OF_RANGE, 3: Q.TIMESTAMP_IN_MILLISECONDS, 4: Q.WRONG_FIELD_TYPE,
                       5: Q.WRONG_FIELD_TYPE, 6: Q.INVALID_ENCODING}
    assert (summary["plays"], summary["duplicates"]) == (2, 1)  # NBSP/ideographic space: the same user
    assert {r["user_id"] for r in delta_io.read(spark, cfg, SILVER_USERS).collect()} == {"lb"}
    bad = delta_io.read(spark, cfg, SILVER_QUARANTINE).where(F.col("line_number") == 6).first()
    assert base64.b64decode(bad["raw_base64"]) == raw.split(b"\n")[5] and "\ufffd" in bad["raw"]
    from deltalake import DeltaTable  # the consumers' reader reads every table with hostile bytes in it
    for table in (BRONZE_LISTENS, SILVER_QUARANTINE, SILVER_PLAYS):
        assert len(DeltaTable(table.path(cfg)).to_pandas()) > 0
