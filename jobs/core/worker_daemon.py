"""The Python daemon of every Spark executor (`spark.python.daemon.module`, set by jobs.core.session):
pyspark's own daemon, started after importing the libraries the stages' Python functions need
(torch, numpy, pandas, pyarrow, pyspark's worker and ML helpers).

pyspark forks each Python worker from one daemon per executor, and a worker left idle for a minute
is stopped (Spark's PythonWorkerFactory; not configurable). So a stage that runs Python after a
minute without it gets fresh workers, and each imported torch again before scoring the LSTM (about
3 s of CPU per worker, twice per stage on 2 cores, in every night's train and recommend), and
pandas, pyarrow and pyspark.ml before its first pandas function (about 1.5 s) (docs/performance.md,
"Python workers forked with their libraries loaded"). Imported once here, before the daemon forks,
every worker starts with them.

A process that forks must have one thread only (pyspark's daemon imports even its worker module
after the fork for that reason: pandas and pyarrow start a thread when imported, jemalloc's
background purger in pyarrow). The modules preloaded here start none with one BLAS thread (the
session sets OPENBLAS_NUM_THREADS=1 for executors) and pyarrow's jemalloc without its background
thread (JE_ARROW_MALLOC_CONF=background_thread:false, unless the environment sets it: jemalloc then
returns memory on the workers' own calls). If a preload started a thread anyway (another BLAS, a
user's JE_ARROW_MALLOC_CONF or SETLIST_WORKER_PRELOAD), the process replaces itself with
pyspark's own daemon, preloading nothing, so the workers are as safe as without this module.

SETLIST_WORKER_PRELOAD (an executor environment variable, spark.executorEnv.SETLIST_WORKER_PRELOAD):
comma-separated modules to import instead of PRELOAD; empty: none."""
from __future__ import annotations

import importlib
import os
import sys

PRELOAD = ("numpy", "pandas", "pyarrow", "torch", "pyspark.worker", "pyspark.ml.feature", "pyspark.ml.functions")
QUIET_JEMALLOC = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}


def preload_modules() -> tuple[str, ...]:
    """The modules to import: SETLIST_WORKER_PRELOAD's, else PRELOAD."""
    named = os.environ.get("SETLIST_WORKER_PRELOAD")
    if named is None:
        return PRELOAD
    return tuple(name.strip() for name in named.split(",") if name.strip())


def threads() -> int:
    """This process's threads (Linux /proc); 1 where it cannot be read."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def preload(modules: tuple[str, ...]) -> bool:
    """Import each module that is installed; True while the process still has a single thread."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    return threads() == 1


def main() -> None:
    for key, value in QUIET_JEMALLOC.items():
        os.environ.setdefault(key, value)
    modules = preload_modules()
    if not preload(modules):
        print(f"setlist worker daemon: preloading {','.join(modules)} started a thread; "
              "running pyspark.daemon without preloads", file=sys.stderr, flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "pyspark.daemon", *sys.argv[1:]])
    from pyspark import daemon
    daemon.manager()


if __name__ == "__main__":
    main()
