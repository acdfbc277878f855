"""Build the driver's class archive (JDK AppCDS) once; setup/bootstrap.sh runs it.

    .venv/bin/python setup/class_archive.py [CONFIG]      (default conf/local.yaml)

A Spark driver loads some 20,000 classes (Spark, Catalyst, Delta, Scala) at every start; on a small
machine that is a good part of what a short run costs before it touches a row. JDK 17 writes the
classes a run loaded into an archive at exit (-XX:ArchiveClassesAtExit); this script gets one by
running a tiny night (generate, ingest, clean: 20 users, 600 events, one application) in a child
process whose driver dumps at exit, and moves it to `jobs.core.session.class_archive_path` (in
$SETLIST_CACHE/cds, keyed by the java binary, pyspark and the Delta jars). Every later driver on this
machine maps it (`spark.class_archive`, on by default). Nothing to do when it is already there; a
failed build prints one line and leaves drivers starting without it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.core.config import Config, load_config  # noqa: E402
from jobs.core.session import CLASS_ARCHIVE_QUIET, class_archive_path  # noqa: E402


def workload(conf_file: str, work: str, extra: list[str]) -> int:
    """In the child: the tiny night in one application, then wait for the driver JVM to exit (it writes
    the archive on its way out)."""
    from pyspark import SparkContext

    from jobs import main as jobs_main
    day = "2026-01-02"
    sets = [f"warehouse={work}/warehouse", f"raw_path={work}/raw", "log_level=WARNING", "spark.master=local[2]",
            "spark.conf.spark.ui.enabled=false", "generate.users=20", "generate.events=600", "generate.days=1"]
    code = jobs_main.main(["generate", "--date", day, "--conf", conf_file,
                           *(arg for s in sets for arg in ("--set", s)), *extra,
                           "--then", "ingest", "--date", day, "--then", "clean", "--date", day])
    gateway = SparkContext._gateway
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        gateway.proc.stdin.close()  # the JVM exits on EOF from its Python parent
        gateway.proc.wait(timeout=600)
    return code


def build(cfg: Config, conf_file: str) -> Path | None:
    """The archive for cfg's packages, built unless it is there (None: no java, or the build failed)."""
    path = class_archive_path(cfg.spark.packages)
    if path is None:
        print("setup: no java found: drivers start without a class archive")
        return None
    if path.is_file():
        print(f"setup: driver class archive cached at {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"setup: building the driver class archive {path} (once, a few minutes)", flush=True)
    log = path.parent / "build.log"
    with tempfile.TemporaryDirectory(prefix="setlist-cds-") as work:
        partial = Path(work) / "driver.jsa"
        env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        dump = f"spark.conf.spark.driver.extraJavaOptions=-XX:ArchiveClassesAtExit={partial} {CLASS_ARCHIVE_QUIET}"
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, __file__, "--workload", conf_file, work, "--set", dump],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
        if proc.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            print(f"setup: the driver class archive was not built (exit {proc.returncode}, see {log}): "
                  "drivers start without it")
            return None
        for stale in path.parent.glob("driver-*.jsa"):  # archives of an older java, pyspark or Delta
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.move(str(partial), tmp)
        tmp.replace(path)
    print(f"setup: driver class archive built in {time.monotonic() - started:.0f} s "
          f"({path.stat().st_size / 2**20:.0f} MiB)")
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["--workload"]:
        return workload(argv[1], argv[2], argv[3:])
    conf_file = argv[0] if argv else str(ROOT / "conf" / "local.yaml")
    build(load_config(conf_file), conf_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
