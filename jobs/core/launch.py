"""What submit.sh hands to spark-submit, derived from the validated config.

`python -m jobs.core.launch JOB [job args]` validates the config exactly as the job will (exit 2 with one
line on a bad key, before any JVM starts) and prints spark-submit's options, one per line:
--master, --name, --conf key=value for Delta and every `spark.conf` entry, and --jars with the
cached Delta jars (resolved from Maven Central through Spark's Ivy on first use, offline after).
"""
from __future__ import annotations

import sys

from jobs.core.errors import ConfigError
from jobs.main import parse


def submit_options(argv: list[str]) -> list[str]:
    args, cfg = parse(argv)
    from jobs.core.session import resolve_jars, spark_conf
    options = ["--master", cfg.spark.master, "--name", f"{cfg.spark.app_name}-{args.job}"]
    for key, value in spark_conf(cfg).items():
        options += ["--conf", f"{key}={value}"]
    options += ["--jars", ",".join(resolve_jars(cfg.spark.packages))]
    return options


def main() -> int:
    try:
        options = submit_options(sys.argv[1:])
    except ConfigError as exc:
        print(f"setlist: error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write("\n".join(options) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
