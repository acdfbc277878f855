"""What submit.sh hands to spark-submit, derived from the validated config.

`python -m jobs.core.launch JOB [job args]` validates the config exactly as the job will (exit 2 with
one line on a bad key, before any JVM starts) and prints, one per line: `UMASK <octal>` (submit.sh
applies it before spark-submit, so every file the run writes gets it), `LOCAL_IP <address>` (a local
master's address, jobs.core.session.local_ip, or `-` on a cluster: submit.sh exports it as
SPARK_LOCAL_IP unless the environment sets that already), then spark-submit's options:
--master, --name (`setlist-JOB`, or `setlist-JOB1+JOB2` for jobs chained with --then), --properties-file,
--jars with the cached Delta jars (resolved from Maven Central through Spark's Ivy on first use,
offline after) and --driver-java-options (the log4j setting, the config's spark.driver.extraJavaOptions
and the driver's class archive once setup built it: setup/class_archive.py). Spark settings (Delta's and
every `spark.conf` entry, secrets included) go into the properties file named by $SETLIST_PROPERTIES_FILE (submit.sh
makes it with mktemp: readable by the user only), never onto a command line where `ps` shows them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from jobs.core.errors import ConfigError
from jobs.main import parse_chain

ROOT = Path(__file__).resolve().parents[2]


def properties(conf: dict[str, str]) -> str:
    """Spark conf as a Java properties file (keys and values escaped)."""
    def escape(text: str, key: bool) -> str:
        out = text.replace("\\", "\\\\")
        for ch in ("=", ":", "#", "!") + ((" ",) if key else ()):
            out = out.replace(ch, "\\" + ch)
        return out
    return "".join(f"{escape(k, True)}={escape(v, False)}\n" for k, v in conf.items())


def submit_options(argv: list[str], properties_file: str) -> list[str]:
    chain, cfg = parse_chain(argv)
    from jobs.core.session import local_ip, resolve_jars, spark_conf
    fd = os.open(properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    conf = spark_conf(cfg)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(properties(conf))
    name = f"{cfg.spark.app_name}-{'+'.join(a.job for a in chain)}"
    # spark-submit's --driver-java-options replaces spark.driver.extraJavaOptions of the properties
    # file, so the config's options (and the driver's class archive) go with the log4j setting here.
    log4j = f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}"
    java_options = " ".join(o for o in (log4j, conf.get("spark.driver.extraJavaOptions", "")) if o)
    return [f"UMASK {cfg.file_umask}", f"LOCAL_IP {local_ip(cfg, conf) or '-'}",
            "--master", cfg.spark.master, "--name", name, "--properties-file", properties_file,
            "--jars", ",".join(resolve_jars(cfg.spark.packages)), "--driver-java-options", java_options]


def main() -> int:
    target = os.environ.get("SETLIST_PROPERTIES_FILE")
    try:
        if not target:
            raise ConfigError("jobs.core.launch: SETLIST_PROPERTIES_FILE is not set (run jobs through submit.sh)")
        options = submit_options(sys.argv[1:], target)
    except ConfigError as exc:
        print(f"setlist: error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write("\n".join(options) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
