#!/usr/bin/env bash
# Run a setlist job, or several in one application, through spark-submit.
#
#   ./submit.sh JOB [--conf FILE] [--date YYYY-MM-DD] [--set key=value ...] [job options] [--then JOB [job options] ...]
#
# Validates the config (exit 2 with one line naming the key, before any JVM starts), zips the
# project's code for --py-files, and calls the venv's spark-submit with the environment's master,
# Spark conf and the cached Delta jars. Driver and executors run the project's Python
# ($SETLIST_PYTHON, default .venv/bin/python) unless the config sets spark.pyspark.python.
# The job's exit code is this script's (0 success; README, "Exit codes"); a SIGTERM stops the run: 143.
# Jobs chained with --then run in order in one Spark application (one JVM start); the first
# failure stops the chain and its exit code is the script's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${SETLIST_PYTHON:-$ROOT/.venv/bin/python}"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -ge 1 ] && exit 0 || exit 2
fi
if [ ! -x "$PY" ]; then
  echo "submit.sh: error: no project Python at $PY: run 'make setup' first (or set SETLIST_PYTHON)" >&2
  exit 2
fi

# Spark conf (secrets included) goes through a properties file only the user can read, never argv.
props="$(mktemp "${TMPDIR:-/tmp}/setlist-spark.XXXXXX.properties")"
trap 'rm -f "$props"' EXIT
trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP  # stopped before any JVM: clean up, exit
status=0
options="$(SETLIST_PROPERTIES_FILE="$props" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
           "$PY" -m jobs.core.launch "$@")" || status=$?
[ "$status" -eq 0 ] || exit "$status"
mapfile -t lines <<< "$options"
umask "${lines[0]#UMASK }"  # every file the run writes (tables, models, reports) gets the configured umask
address="${lines[1]#LOCAL_IP }"  # a local master's own address: no host-name lookup and loopback warning
if [ "$address" != "-" ] && [ -z "${SPARK_LOCAL_IP:-}" ]; then
  export SPARK_LOCAL_IP="$address"
fi
spark_options=("${lines[@]:2}")

zip="$(mktemp "${TMPDIR:-/tmp}/setlist-code.XXXXXX.zip")"
errors="$(mktemp "${TMPDIR:-/tmp}/setlist-error.XXXXXX")"
trap 'rm -f "$props" "$zip" "$errors"' EXIT
"$PY" - "$ROOT" "$zip" <<'PYZIP'
import pathlib, sys, zipfile
root, target = pathlib.Path(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
    for package in ("jobs", "udfs", "models"):  # jobs/core comes with jobs
        for path in sorted((root / package).rglob("*.py")):
            z.write(path, path.relative_to(root).as_posix())
PYZIP

# Processes that Python workers start themselves (TorchDistributor's torchrun ranks) import the
# project's code through PYTHONPATH: the zip's path here (local mode) and its name in an executor's
# working folder (a cluster, where --py-files are shipped). The driver's stderr reaches us merged into spark-submit's stdout; its one-line error comes back
# through this file and goes to our stderr.
export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY" SETLIST_ERROR_FILE="$errors"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"  # Spark runs a task per core; one BLAS thread each
# A stop request to this script (SIGTERM, SIGINT or SIGHUP, e.g. from a scheduler that signals only
# the process it started) goes on to spark-submit as SIGTERM: its JVM's shutdown stops the Spark
# application, the driver and every process its tasks started, and this script exits with the run's
# code (143). Without this, bash died alone and the run went on, orphaned, holding the warehouse.
run="" stopping=""
trap 'stopping=1; [ -z "$run" ] || kill -TERM "$run" 2>/dev/null || true' TERM INT HUP
"$(dirname "$PY")/spark-submit" \
  --conf "spark.pyspark.python=$PY" --conf "spark.pyspark.driver.python=$PY" \
  --conf "spark.executorEnv.PYTHONPATH=$zip:$(basename "$zip")" \
  "${spark_options[@]}" \
  --py-files "$zip" \
  "$ROOT/jobs/main.py" "$@" <&0 &
run=$!
[ -z "$stopping" ] || kill -TERM "$run" 2>/dev/null || true  # a stop that came while it was starting
status=0
wait "$run" || status=$?
while [ -n "$stopping" ]; do  # a signal ended the wait, not the run: wait for the run itself
  stopping="" status=0
  wait "$run" || status=$?
done
if [ -s "$errors" ]; then
  cat "$errors" >&2
fi
exit "$status"
