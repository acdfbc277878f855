"""submit.sh against a real standalone Spark cluster: a Master and two Workers, each its own JVM,
started from PySpark's own jars. Proves the packaging (zip for --py-files, jars, the executors'
Python) works outside local mode. All traffic stays on 127.0.0.1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import functions as F

from conftest import ROOT, command_lines, small_generate
from jobs import generate
from jobs.core import delta_io
from jobs.core.config import with_overrides
from jobs.core.tables import SILVER_CLEAN_RUNS, SILVER_PLAYS

SPARK_HOME = Path(pyspark.__file__).parent


def free_ports(n: int) -> list[int]:
    """n distinct free ports: every socket stays bound until all are chosen, so no two coincide."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("cluster-logs")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_NO_DAEMONIZE": "1", "PYSPARK_PYTHON": sys.executable}
    port, ui, *worker_uis = free_ports(4)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)],
                              env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT)]
    for i in range(2):
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
             "--memory", "1536m", "--webui-port", str(worker_uis[i]), "--work-dir", str(logs / f"work{i}"),
             f"spark://127.0.0.1:{port}"],
            env=env, stdout=open(logs / f"worker{i}.log", "w"), stderr=subprocess.STDOUT))
    try:
        deadline, last = time.monotonic() + 90, None
        while True:
            try:
                if sum(w["state"] == "ALIVE" for w in master_state(ui)["workers"]) == 2:
                    break
            except (OSError, ValueError, KeyError) as e:  # not listening yet, or a page that is not the JSON yet
                last = e
            if time.monotonic() > deadline:
                raise RuntimeError(f"standalone cluster did not start ({last!r}); logs in {logs}")
            time.sleep(1)
        yield {"master": f"spark://127.0.0.1:{port}", "ui": ui, "logs": logs}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def submit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SETLIST_PYTHON": sys.executable}
    return subprocess.run([str(ROOT / "submit.sh"), *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def test_submit_runs_jobs_on_a_standalone_cluster(spark, base_cfg, cluster, tmp_path):
    import threading

    import yaml
    secret = "setlist-test-secret-7f3a9"
    conf = yaml.safe_load((ROOT / "conf" / "local.yaml").read_text())
    conf["spark"]["conf"]["spark.hadoop.fs.s3a.secret.key"] = secret
    conf_file = tmp_path / "with-secret.yaml"
    conf_file.write_text(yaml.safe_dump(conf))
    seen, done = [], threading.Event()

    def watch():  # what `ps` would show while the jobs run
        while not done.is_set():
            seen.extend(line for line in command_lines().values() if secret in line)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    overrides = [f"warehouse={tmp_path / 'wh'}", f"raw_path={tmp_path / 'raw'}",
                 f"spark.master={cluster['master']}", "spark.conf.spark.executor.memory=1g",
                 "spark.conf.spark.driver.memory=1g", "spark.conf.spark.sql.shuffle.partitions=4",
                 *small_generate(days=1, users=20, events=400, end_date="2026-01-01")]
    flags = ["--conf", str(conf_file), *[f"--set={o}" for o in overrides]]
    cfg = with_overrides(base_cfg, [o for o in overrides if not o.startswith("spark.")])
    generate.run(spark, cfg)  # in-process: the raw files are only the cluster jobs' input
    # every job in one application (--then): one driver, one set of executors (an application's
    # start on the workers is most of this test's time). The third job has no input: the chain stops
    # there with that job's exit code, and the job after it does not run.
    proc = submit("ingest", "--date", "2026-01-01", *flags, "--then", "clean", "--date", "2026-01-01",
                  "--then", "clean", "--date", "2026-01-09", "--then", "tables")
    assert proc.returncode == 3, f"ingest --then clean --then clean: exit {proc.returncode}:\n{proc.stderr[-4000:]}"
    assert "no rows in bronze.listens for 2026-01-09: run `ingest --date 2026-01-09` first" in proc.stderr
    assert "clean failed: not running tables" in proc.stdout + proc.stderr
    done.set()
    watcher.join()
    assert not seen, f"a Spark secret was on a command line: {seen[0][:300]}"
    world_readable = [str(p) for p in (tmp_path / "wh").rglob("*") if p.stat().st_mode & 0o007]
    assert not world_readable, world_readable[:5]

    run = delta_io.read(spark, cfg, SILVER_CLEAN_RUNS).first()
    plays = delta_io.read(spark, cfg, SILVER_PLAYS)
    assert run["plays"] == plays.count() > 100
    assert run["bronze_rows"] == run["plays"] + run["quarantined"] + run["duplicates"]
    assert plays.where(F.col("user_idx").isNull()).count() == 0

    apps = master_state(cluster["ui"])["completedapps"]
    assert [a["name"] for a in apps] == ["setlist-ingest+clean+clean+tables"]
    # the executors ran on the workers, in their own JVMs and with the project's code from the zip
    executor_logs = list(Path(cluster["logs"]).glob("work*/app-*/*/stderr"))
    assert executor_logs, "no executor ran on the workers"
