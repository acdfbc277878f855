#!/usr/bin/env bash
# Set up everything setlist needs on a fresh machine, reusing what is cached.
#
# - the venv: built from requirements.txt in $SETLIST_CACHE (default ~/.cache/setlist), in a folder
#   keyed by the hash of requirements.txt and the Python version, linked as .venv;
# - the Delta jars: resolved once from Maven Central through Spark's Ivy into the same cache;
# - the driver's class archive (JDK AppCDS): Spark's classes loaded once, mapped by later drivers;
# - Horovod: setup/horovod.sh builds and caches its wheel (see issue "LSTM next-track model");
# - a native BLAS: Spark's ALS and k-means call BLAS through netlib, which loads libblas.so.3 and
#   falls back to a Java BLAS without it (as fast at rank 32, 1.4x slower ALS at rank 128: bench/blas.py); Debian's OpenBLAS is installed when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SETLIST_CACHE:-$HOME/.cache/setlist}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"

pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (cat "$ROOT/requirements.txt"; echo "python $pyver") | sha256sum | cut -c1-16)"
venv="$CACHE/venv-$key"

if [ ! -f "$venv/.complete" ]; then
  echo "setup: building the venv $venv (python $pyver, requirements.txt $key)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r "$ROOT/requirements.txt"
  touch "$venv/.complete"
else
  echo "setup: venv cached at $venv"
fi
ln -sfn "$venv" "$ROOT/.venv"

export SETLIST_CACHE="$CACHE"
PYTHONPATH="$ROOT" "$venv/bin/python" - "$ROOT/conf/local.yaml" <<'PY'
import sys
from jobs.core.config import load_config
from jobs.core.session import resolve_jars
jars = resolve_jars(load_config(sys.argv[1]).spark.packages)
print(f"setup: {len(jars)} Delta jars cached")
PY

# The driver's class archive (JDK AppCDS, setup/class_archive.py): a tiny night run once, its classes
# kept in $CACHE/cds keyed by the java, pyspark and Delta jars; every later driver maps them.
"$venv/bin/python" "$ROOT/setup/class_archive.py" "$ROOT/conf/local.yaml" \
  || echo "setup: the driver class archive was not built: drivers start without it"

if ! ldconfig -p 2>/dev/null | grep -q "libblas\.so\.3 "; then
  install=(apt-get install -y -qq --no-install-recommends libopenblas0-pthread)
  if [ "$(id -u)" != 0 ]; then install=(sudo -n "${install[@]}"); fi
  echo "setup: installing Debian's OpenBLAS (libblas.so.3) for Spark's ALS and k-means"
  if ! "${install[@]}" >/dev/null 2>&1; then
    { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && "${install[@]}" >/dev/null 2>&1; } \
      || echo "setup: could not install libopenblas0-pthread: Spark uses its Java BLAS (slower ALS at large ranks, see README)"
  fi
fi

if [ -x "$ROOT/setup/horovod.sh" ]; then
  "$ROOT/setup/horovod.sh" "$venv"
fi
echo "setup: done"
