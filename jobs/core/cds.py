"""A class-data-sharing archive for the driver JVM (JDK's AppCDS), built once by `make setup`.

A Spark driver loads some 20,000 classes (Spark, Catalyst, Delta, Scala) at every start, and on a
small machine that is a good part of what a short run costs before it touches a row. JDK 17 can
write the classes a run loaded into an archive at exit (`-XX:ArchiveClassesAtExit`); a later JVM
started with `-XX:SharedArchiveFile` maps them instead of parsing and verifying the jars again.

`python -m jobs.core.cds` (run by setup/bootstrap.sh) builds the archive by running a tiny night
(generate, ingest, clean) in a driver that dumps its classes at exit. The archive lives in
`$SETLIST_CACHE/cds/`, keyed by what it depends on: the java binary, pyspark's version and jars, the
Delta jars and WORKLOAD_VERSION. `driver_java_options` adds it to the driver's options when it exists
and the driver runs on this machine; a JVM whose class path does not match the archive (other jars
added) ignores it and loads classes as usual, so the archive can make a start faster, never wrong.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs.core.config import Config

WORKLOAD_VERSION = "1"  # bump when the workload below changes what it loads
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # a mismatch is not an error: no JVM warning on stderr


def java_binary() -> Path | None:
    """The java that spark-submit starts: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else (Path(p) if (p := shutil.which("java")) else None)
    return found.resolve() if found and found.exists() else None


def archive_path(packages: list[str]) -> Path | None:
    """Where the archive for this java, this pyspark and these Delta packages lives (None: no java)."""
    import pyspark
    from jobs.core.session import cache_dir, cached_jars
    java = java_binary()
    if java is None:
        return None
    spark_jars = sorted(p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    stat = java.stat()
    parts = [str(java), str(stat.st_size), str(int(stat.st_mtime)), pyspark.__version__, *spark_jars,
             *(cached_jars(packages) or sorted(packages)), WORKLOAD_VERSION]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return cache_dir() / "cds" / f"driver-{key}.jsa"


def driver_here(conf: dict[str, str]) -> bool:
    """The driver JVM starts on this machine (local master, or client deploy mode)."""
    return conf.get("spark.submit.deployMode", "client") != "cluster"


def driver_java_options(cfg: Config, conf: dict[str, str]) -> str:
    """The config's spark.driver.extraJavaOptions plus the archive's options when it is built."""
    own = conf.get("spark.driver.extraJavaOptions", "")
    if "SharedArchiveFile" in own or "ArchiveClassesAtExit" in own or not driver_here(conf):
        return own
    path = archive_path(cfg.spark.packages)
    if path is None or not path.is_file():
        return own
    return " ".join(part for part in (own, f"-XX:SharedArchiveFile={path}", QUIET) if part)


def _workload(conf_file: str, work: str, extra: list[str]) -> int:
    """Run in the child: a tiny night (generate, ingest, clean in one application) in a driver that
    writes its classes at exit, then wait for that exit."""
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
        gateway.proc.stdin.close()  # the JVM exits on EOF and writes the archive on its way out
        gateway.proc.wait(timeout=600)
    return code


def build(cfg: Config, conf_file: str) -> Path | None:
    """Build the archive for cfg's packages unless it is there; return its path (None: not built)."""
    path = archive_path(cfg.spark.packages)
    if path is None:
        print("setup: no java found: the driver starts without a class archive")
        return None
    if path.is_file():
        print(f"setup: driver class archive cached at {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"setup: building the driver class archive {path} (once, about a minute)")
    with tempfile.TemporaryDirectory(prefix="setlist-cds-") as work:
        partial = Path(work) / "driver.jsa"
        env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   PYTHONPATH=os.pathsep.join(
                       p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p))
        conf_args = ["--set", f"spark.conf.spark.driver.extraJavaOptions=-XX:ArchiveClassesAtExit={partial} {QUIET}"]
        log = path.parent / "build.log"
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, "-m", "jobs.core.cds", "--workload", conf_file, work, *conf_args],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900)
        if proc.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
            print(f"setup: the driver class archive was not built (exit {proc.returncode}, see {log}): "
                  "the driver starts without it")
            return None
        for stale in path.parent.glob("driver-*.jsa"):  # archives of an older java, pyspark or Delta
            stale.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        shutil.move(str(partial), tmp)
        tmp.replace(path)
    print(f"setup: driver class archive built in {time.monotonic() - started:.0f} s "
          f"({path.stat().st_size / 2**20:.0f} MiB)")
    return path


def main(argv: list[str]) -> int:
    from jobs.core.config import load_config
    if argv[:1] == ["--workload"]:
        return _workload(argv[1], argv[2], argv[3:])
    conf_file = argv[0] if argv else "conf/local.yaml"
    build(load_config(conf_file), conf_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
