"""Config validation: every bad file or flag is one line naming the file and the key, exit 2."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT
from jobs.core.config import declared_keys, load_config, markdown_table, with_overrides
from jobs.core.errors import ConfigError
from jobs.main import main, setup_logging


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return str(info.value)


def test_both_shipped_configs_are_valid():
    local = load_config(ROOT / "conf" / "local.yaml")
    cluster = load_config(ROOT / "conf" / "cluster.yaml")
    assert local.spark.master.startswith("local")
    assert cluster.warehouse.startswith("hdfs://") and cluster.spark.master == "yarn"
    assert local.clean.session_gap_minutes == 30
    from models.embeddings import choose_engine  # one machine: gensim at 10M plays; a cluster: MLlib
    assert choose_engine(local.embed.engine, 10_000_000, local.embed.spark_above) == "gensim"
    assert choose_engine(cluster.embed.engine, 10_000_000, cluster.embed.spark_above) == "spark"


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    path = write(tmp_path, """
        warehouse: /w
        raw_path: /r
        clean:
          session_gap_minuts: 30
    """)
    msg = error_of(path)
    assert msg.startswith(f"{path}: clean.session_gap_minuts: unknown key")
    assert "\n" not in msg


def test_wrong_type_and_bad_choice_and_range(tmp_path):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nclean: {session_gap_minutes: thirty}\n")
    assert error_of(path) == f"{path}: clean.session_gap_minutes: expected int, got str 'thirty'"
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nclean: {unicode_form: NFD}\n")
    assert "clean.unicode_form: 'NFD' is not one of NFC, NFKC" in error_of(path)
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\ngenerate: {dirty_fraction: 1.5}\n")
    assert "generate.dirty_fraction: must be between 0 and 1" in error_of(path)
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nclean: {ts_floor: 2002-13-01}\n")
    assert "clean.ts_floor: expected date (YYYY-MM-DD)" in error_of(path)


def test_missing_required_value(tmp_path):
    path = write(tmp_path, "raw_path: /r\n")
    assert error_of(path) == f"{path}: warehouse: required value is missing"


def test_overrides_replace_single_keys_and_are_validated(tmp_path):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    cfg = load_config(path, ["clean.session_gap_minutes=45", "spark.conf.spark.sql.shuffle.partitions=3"])
    assert cfg.clean.session_gap_minutes == 45
    assert cfg.spark.conf == {"spark.sql.shuffle.partitions": 3}
    assert cfg.generate.seed == 42  # untouched keys keep their defaults
    assert "generate.seed: expected int" in error_of(path, ["generate.seed=abc"])
    assert "clean.nope: unknown key" in error_of(path, ["clean.nope=1"])
    assert with_overrides(cfg, ["generate.users=7"]).generate.users == 7


def test_relative_paths_resolve_against_cwd_and_uris_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, "warehouse: ./wh\nraw_path: s3a://bucket/raw\n"))
    assert cfg.warehouse == str(tmp_path / "wh")
    assert cfg.raw_path == "s3a://bucket/raw"


def test_main_exits_2_with_one_line_before_spark(tmp_path, capsys):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nspark: {mastr: local}\n")
    assert main(["clean", "--conf", str(path), "--date", "2026-01-01"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"setlist: error: {path}: spark.mastr: unknown key "
                   f"(known here: app_name, class_archive, conf, event_log, master, packages)")
    assert main(["clean", "--conf", str(path), "--date", "2026-02-30"]) == 2
    assert capsys.readouterr().err.strip() == "setlist: error: argument --date: 2026-02-30: not a date (YYYY-MM-DD)"
    assert main(["backfill", "--conf", str(path), "--from", "2026-13-01", "--to", "2026-12-31"]) == 2
    assert capsys.readouterr().err.strip() == "setlist: error: argument --from: 2026-13-01: not a date (YYYY-MM-DD)"
    assert main(["nosuchjob"]) == 2


def test_an_error_in_a_key_given_by_set_names_the_set_item_not_the_file(tmp_path, capsys):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    run = ["clean", "--conf", str(path), "--date", "2026-01-01"]
    assert main([*run, "--set", "clean.session_gap_minutes=-5"]) == 2
    assert capsys.readouterr().err.strip() == ("setlist: error: --set clean.session_gap_minutes=-5: "
                                               "clean.session_gap_minutes: must be positive, got -5")
    # an unknown key, an unknown section, a list item, a rule between keys; the last --set of a key wins
    assert error_of(path, ["als.rankk=3"]).startswith("--set als.rankk=3: als.rankk: unknown key (known here: ")
    assert error_of(path, ["alss.rank=3"]).startswith("--set alss.rank=3: alss: unknown key (known here: ")
    assert error_of(path, ["als.grid_ranks=[4, -1]"]) == ("--set als.grid_ranks=[4, -1]: als.grid_ranks[1]: "
                                                          "must be positive, got -1")
    assert error_of(path, ["cluster.k=1"]).startswith("--set cluster.k=1: cluster.k: k must be 0")
    assert error_of(path, ["als.rank=4", "als.rank=0"]) == "--set als.rank=0: als.rank: must be positive, got 0"
    # an error in the file itself still names the file, whatever else --set gives
    bad = write(tmp_path, "warehouse: /w\nraw_path: /r\nals: {rank: 0}\n")
    assert error_of(bad, ["als.alpha=2.0"]) == f"{bad}: als.rank: must be positive, got 0"


def test_the_log_drops_py4js_retried_command_trace_and_keeps_the_rest(capsys):
    """py4j logs a retried command (a closed thread connection replaced, the command then succeeds)
    at INFO with a traceback on the root logger; a night's log must not show it as a failure."""
    import logging
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            logging.info("Exception while sending command.", exc_info=True)  # py4j's call, verbatim
            logging.info("a stage's own line")
            logging.exception("Exception while sending command.")  # py4j's call when the retry fails
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "a stage's own line" in err
    assert err.count("Exception while sending command.") == 1
    assert "ERROR root: Exception while sending command." in err
    assert err.count("[Errno 104]") == 1  # one traceback: the failed command's


def test_the_log_keeps_xgboost_and_mlflow_info_lines_out_and_their_warnings_in():
    """XGBoost's Spark estimator logs its booster parameters and progress at INFO on every fit and
    predict (driver and executors), and MLflow its store's setup; a night's log at INFO shows the
    stages' lines, not theirs. A fresh process: MLflow configures its loggers once, when imported."""
    script = """
import logging
from jobs.main import setup_logging
setup_logging("INFO")
from xgboost.spark.core import _LOG_TAG
from xgboost.spark.utils import get_logger, get_logger_level
import mlflow
get_logger(_LOG_TAG).info("xgboost info")
get_logger(_LOG_TAG).warning("xgboost warning")
logging.getLogger("mlflow.store.db.utils").info("mlflow info")
logging.getLogger("mlflow.store.db.utils").warning("mlflow warning")
logging.getLogger("setlist.rank").info("a stage's own line")
print("executors get", logging.getLevelName(get_logger_level(_LOG_TAG)))
"""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "executors get WARNING"
    assert "xgboost warning" in out.stderr and "mlflow warning" in out.stderr and "a stage's own line" in out.stderr
    assert "xgboost info" not in out.stderr and "mlflow info" not in out.stderr


def test_chained_jobs_are_all_checked_before_the_first_runs(tmp_path, capsys):
    path = write(tmp_path, f"warehouse: {tmp_path / 'w'}\nraw_path: {tmp_path / 'r'}\n")
    conf = ["--conf", str(path)]
    # the third job lacks its --date: exit 2 before ingest (which would exit 3: no raw files) starts
    assert main(["ingest", *conf, "--date", "2026-01-01", "--then", "tables", "--then", "clean"]) == 2
    assert capsys.readouterr().err.strip() == "setlist: error: clean: --date YYYY-MM-DD is required"
    assert main(["ingest", *conf, "--date", "2026-01-01", "--then", "clean", "--date", "2026-01-01",
                 "--set", "clean.session_gap_minutes=45"]) == 2
    assert capsys.readouterr().err.strip() == (
        "setlist: error: clean: --conf and --set go with the first job only (one application runs one config; "
        "after --then they are the first job's)")
    for given in (["--conf", str(path)], [f"--conf={path}"], ["--set=clean.session_gap_minutes=45"]):
        assert main(["tables", *conf, "--then", "preview", *given]) == 2
        assert "--conf and --set go with the first job only" in capsys.readouterr().err
    assert main(["tables", *conf, "--then"]) == 2
    assert "a job name must come before and after every --then" in capsys.readouterr().err
    assert main(["tables", *conf, "--then", "nosuchjob"]) == 2
    assert "invalid choice: 'nosuchjob'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing ran


def test_submit_sh_rejects_bad_config_fast_with_exit_2(tmp_path):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nclean: {session_gap_minutes: -5}\n")
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / "submit.sh"), "clean", "--conf", str(path), "--date", "2026-01-01"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"setlist: error: {path}: clean.session_gap_minutes: must be positive, got -5"
    assert time.monotonic() - started < 15  # no JVM was started


def test_every_key_is_declared_once_with_help_and_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    keys = declared_keys()
    assert len(keys) > 90 and all(meta["help"] for _, _, _, meta in keys)
    missing = [name for name, _, _, _ in keys if f"`{name}`" not in readme]
    assert not missing, f"README lacks config keys {missing}: paste `python -m jobs.core.config`"
    assert markdown_table() in readme


def test_renamed_keys_keep_working_and_land_in_the_section_that_uses_them(tmp_path, caplog):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nevaluate: {recent_tracks: 7, neighbours: 9}\n")
    with caplog.at_level("WARNING", logger="setlist.config"):
        cfg = load_config(path)
    assert (cfg.recommend.recent_tracks, cfg.recommend.neighbours) == (7, 9)
    assert "evaluate.recent_tracks is deprecated, use recommend.recent_tracks" in caplog.text
    assert "recommend.neighbours: must be positive, got 0" in error_of(path, ["evaluate.neighbours=0"])


def test_ranges_are_declared_with_the_keys(tmp_path):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    assert "train.dropout: must be in [0, 1), got 1.0" in error_of(path, ["train.dropout=1.0"])
    assert "generate.active_day_prob: must be in (0, 1], got 0.0" in error_of(path, ["generate.active_day_prob=0.0"])
    assert "als.grid_ranks[1]: must be positive, got 0" in error_of(path, ["als.grid_ranks=[4, 0]"])
    assert "catalog.database: 'a-b' does not match" in error_of(path, ["catalog.database=a-b"])
    assert "ingest.formats[0]: 'csv' is not one of" in error_of(path, ["ingest.formats=[csv]"])


def test_control_characters_empty_paths_and_unset_variables_are_config_errors(tmp_path, monkeypatch):
    path = write(tmp_path, 'warehouse: /w\nraw_path: /r\nspark: {app_name: "setlist\\n--conf evil=1"}\n')
    assert error_of(path) == f"{path}: spark.app_name: control character '\\n' not allowed in a value"
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    assert "spark.conf.spark.x: control character '\\t'" in error_of(path, ["spark.conf.spark.x=a\tb"])
    assert error_of(path, ["warehouse="]) == "--set warehouse=: warehouse: must not be empty"
    monkeypatch.delenv("SETLIST_NO_SUCH_ROOT", raising=False)
    assert error_of(path, ["raw_path=${SETLIST_NO_SUCH_ROOT}/raw"]) == \
        "--set raw_path=${SETLIST_NO_SUCH_ROOT}/raw: raw_path: ${SETLIST_NO_SUCH_ROOT} is not set in the environment"
    monkeypatch.setenv("SETLIST_ROOT", "/data")
    assert load_config(path, ["raw_path=${SETLIST_ROOT}/raw"]).raw_path == "/data/raw"


def test_launch_puts_spark_conf_with_secrets_in_a_private_properties_file(tmp_path, monkeypatch):
    import stat

    from jobs.core.launch import submit_options
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nspark:\n  conf:\n    spark.hadoop.fs.s3a.secret.key: s3cr=t\n")
    props = tmp_path / "spark.properties"
    options = submit_options(["clean", "--conf", str(path), "--date", "2026-01-01"], str(props))
    assert options[0] == "UMASK 027" and "--properties-file" in options
    assert options[1] == "LOCAL_IP -"  # no bind address configured: Spark picks the host's own
    assert not [o for o in options if "s3cr" in o or o == "--conf"]
    assert stat.S_IMODE(props.stat().st_mode) == 0o600
    text = props.read_text()
    assert "spark.hadoop.fs.s3a.secret.key=s3cr\\=t\n" in text and "spark.sql.extensions=" in text


def test_every_session_keeps_4000_compiled_classes_unless_its_config_sets_another_size(tmp_path):
    """In-process sessions and submit.sh's properties file alike (docs/performance.md, "Compiled
    classes kept for the whole application"; tests/test_recommend.py measures what it saves)."""
    from jobs.core.launch import submit_options
    from jobs.core.session import spark_conf
    key = "spark.sql.codegen.cache.maxEntries"
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    assert spark_conf(load_config(path))[key] == "4000"
    assert spark_conf(load_config(path, [f"spark.conf.{key}=500"]))[key] == "500"
    props = tmp_path / "spark.properties"
    submit_options(["clean", "--conf", str(path), "--date", "2026-01-01"], str(props))
    assert f"{key}=4000\n" in props.read_text()
    submit_options(["clean", "--conf", str(path), "--date", "2026-01-01", "--set", f"spark.conf.{key}=500"], str(props))
    assert f"{key}=500\n" in props.read_text() and f"{key}=4000" not in props.read_text()


def test_every_session_writes_a_tasks_few_partitions_without_sorting_unless_its_config_says(tmp_path):
    """Spark's default (0) sorts every write's rows by the table's partition columns; the session
    keeps two files open per write task instead (docs/performance.md, "The night's plays shuffled
    and sorted once"), and a config's spark.conf may set another number, 0 included."""
    from jobs.core.session import spark_conf
    key = "spark.sql.maxConcurrentOutputFileWriters"
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\n")
    assert spark_conf(load_config(path))[key] == "2"
    assert spark_conf(load_config(path, [f"spark.conf.{key}=0"]))[key] == "0"


def test_executors_python_workers_are_forked_from_a_daemon_that_imported_torch(spark):
    """Spark stops a Python worker idle for a minute; each fresh one imported torch again (about 3 s
    of CPU) before a stage's LSTM scoring. The session's daemon (jobs/core/worker_daemon.py) imports
    it before it forks, so a worker has it before its task's function runs."""
    assert spark.sparkContext.getConf().get("spark.python.daemon.module") == "jobs.core.worker_daemon"

    def seen(batches):
        import os as os_
        import sys as sys_

        import pandas as pd_
        with open(f"/proc/{os_.getppid()}/maps") as maps:
            daemon_has_torch = "libtorch" in maps.read()
        had_torch = "torch" in sys_.modules
        for _ in batches:
            pass
        yield pd_.DataFrame({"daemon_has_torch": [daemon_has_torch], "had_torch": [had_torch]})

    rows = spark.range(0, 4, 1, 2).mapInPandas(seen, "daemon_has_torch boolean, had_torch boolean").collect()
    assert len(rows) == 2 and all(r.daemon_has_torch and r.had_torch for r in rows)


def test_a_worker_daemon_whose_preloads_start_a_thread_runs_pysparks_own(tmp_path):
    """A process must have one thread when it forks: pyarrow's import starts one (jemalloc's purger)
    unless told not to, so where the environment's own JE_ARROW_MALLOC_CONF asks for it the daemon
    replaces itself with pyspark.daemon, which then serves as usual (its port on stdout) and stops
    when its stdin closes; with the shipped preloads and settings it stays itself, one thread."""
    import struct

    def started(jemalloc: str | None):
        env = {k: v for k, v in os.environ.items() if k not in ("SETLIST_WORKER_PRELOAD", "JE_ARROW_MALLOC_CONF")}
        env |= {"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
        if jemalloc is not None:
            env["JE_ARROW_MALLOC_CONF"] = jemalloc
        proc = subprocess.Popen([sys.executable, "-m", "jobs.core.worker_daemon"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        port = struct.unpack("!i", proc.stdout.read(4))[0]  # the daemon is listening
        command = (Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        threads = len(list(Path(f"/proc/{proc.pid}/task").iterdir()))
        proc.stdin.close()
        proc.wait(timeout=60)  # it stops (pyspark's daemon exits 1 whenever it stops)
        return port, command, maps, threads, proc.stderr.read().decode()

    port, command, maps, threads, err = started("background_thread:true")
    assert port > 0 and "-m pyspark.daemon" in command and "jobs.core.worker_daemon" not in command
    assert "started a thread; running pyspark.daemon without preloads" in err and "libtorch" not in maps
    port, command, maps, threads, err = started(None)
    assert port > 0 and "-m jobs.core.worker_daemon" in command and err == ""
    assert "libtorch" in maps and "libarrow" in maps and threads == 1


def test_uris_stay_uris_for_every_path_the_jobs_write(tmp_path):
    import datetime as dt

    from jobs.core.paths import location, new_artifact
    from models import storage
    cfg = load_config(write(tmp_path, "warehouse: hdfs:///data/setlist/wh\nraw_path: s3a://bucket/raw\n"))
    assert location(cfg, "reports", "evaluate-2026-01-03.html") == "hdfs:///data/setlist/wh/reports/evaluate-2026-01-03.html"
    assert location(cfg, "checkpoints", "lstm") == "hdfs:///data/setlist/wh/_checkpoints/lstm"
    assert new_artifact(cfg, "als", dt.date(2026, 1, 3)).startswith("hdfs:///data/setlist/wh/models/als/2026-01-03/")
    local = tmp_path / "out"  # the same helper on a local folder: atomic writes, listing
    storage.write_bytes(storage.join(str(local), "a", "x.bin"), b"1")
    assert storage.listdir(str(local / "a")) == ["x.bin"] and storage.read_bytes(str(local / "a" / "x.bin")) == b"1"


def test_launch_hands_the_configs_driver_java_options_to_spark_submit(tmp_path):
    """submit.sh's --driver-java-options replaced spark.driver.extraJavaOptions of the properties
    file; the config's options now go with the log4j setting on that one flag."""
    from jobs.core.launch import submit_options
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nspark:\n  conf:\n"
                           "    spark.driver.extraJavaOptions: -Dsetlist.probe=1 -XX:+UseParallelGC\n")
    options = submit_options(["clean", "--conf", str(path), "--date", "2026-01-01"], str(tmp_path / "p"))
    java = options[options.index("--driver-java-options") + 1]
    assert java.startswith(f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'} ")
    assert "-Dsetlist.probe=1 -XX:+UseParallelGC" in java


def test_a_local_master_gets_the_configs_bind_address_as_its_own_and_a_cluster_does_not(tmp_path):
    """submit.sh exports `LOCAL_IP` as SPARK_LOCAL_IP (unless set), so a local run does not look up
    the host's name and warn that it resolves to a loopback address."""
    from jobs.core.launch import submit_options

    def local_ip(path):
        return submit_options(["clean", "--conf", str(path), "--date", "2026-01-01"], str(tmp_path / "p"))[1]
    bound = "  conf:\n    spark.driver.bindAddress: 127.0.0.1\n"
    assert local_ip(write(tmp_path, "warehouse: /w\nraw_path: /r\nspark:\n  master: local[2]\n" + bound)) == \
        "LOCAL_IP 127.0.0.1"
    assert local_ip(write(tmp_path, "warehouse: /w\nraw_path: /r\nspark:\n  master: spark://head:7077\n" + bound)) == \
        "LOCAL_IP -"
    assert local_ip(ROOT / "conf" / "local.yaml") == "LOCAL_IP 127.0.0.1"


def test_the_driver_class_archive_is_added_once_built_and_only_where_the_driver_runs(tmp_path, monkeypatch):
    from jobs.core.session import CLASS_ARCHIVE_QUIET, JIT_OPTIONS, class_archive_path, spark_conf
    monkeypatch.setenv("SETLIST_CACHE", str(tmp_path / "cache"))
    own = f"{JIT_OPTIONS} -Dsetlist.probe=1"  # the config's own options follow the JIT's
    cfg = load_config(write(tmp_path, f"warehouse: /w\nraw_path: /r\nspark:\n  conf:\n"
                                      f"    spark.driver.extraJavaOptions: -Dsetlist.probe=1\n"))
    assert spark_conf(cfg)["spark.driver.extraJavaOptions"] == own  # not built: the config's own options
    archive = class_archive_path(cfg.spark.packages)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"jsa")
    assert spark_conf(cfg)["spark.driver.extraJavaOptions"] == f"{own} -XX:SharedArchiveFile={archive} {CLASS_ARCHIVE_QUIET}"
    remote = with_overrides(cfg, ["spark.conf.spark.submit.deployMode=cluster"])
    assert spark_conf(remote)["spark.driver.extraJavaOptions"] == own  # the driver starts on another machine
    assert spark_conf(with_overrides(cfg, ["spark.class_archive=false"]))["spark.driver.extraJavaOptions"] == own
    dumping = with_overrides(cfg, ["spark.conf.spark.driver.extraJavaOptions=-XX:ArchiveClassesAtExit=/tmp/x.jsa"])
    assert spark_conf(dumping)["spark.driver.extraJavaOptions"] == f"{JIT_OPTIONS} -XX:ArchiveClassesAtExit=/tmp/x.jsa"


def test_every_spark_jvm_compiles_huge_generated_methods_unless_the_config_says_otherwise(spark, tmp_path):
    """HotSpot leaves methods over 8,000 bytecode bytes to its interpreter; the code Spark generates for
    clean's parse is larger. The test session's JVM (the driver, which runs the tasks in local mode)
    lets the JIT compile them, executors are given the same option, and a config can set it back."""
    from jobs.core.session import JIT_OPTIONS, spark_conf
    jvm = spark.sparkContext._jvm
    hotspot = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    assert hotspot.getVMOption("DontCompileHugeMethods").getValue() == "false"
    cfg = load_config(write(tmp_path, "warehouse: /w\nraw_path: /r\n"))
    assert spark_conf(cfg)["spark.executor.extraJavaOptions"] == JIT_OPTIONS == "-XX:-DontCompileHugeMethods"
    back = with_overrides(cfg, ["spark.conf.spark.executor.extraJavaOptions=-XX:+DontCompileHugeMethods"])
    assert spark_conf(back)["spark.executor.extraJavaOptions"] == f"{JIT_OPTIONS} -XX:+DontCompileHugeMethods"


def test_the_test_sessions_driver_maps_the_class_archive_setup_built(spark, base_cfg):
    """`make setup` built the archive (setup/class_archive.py) and this session's JVM mapped all of it:
    a class path that did not match would leave only the JDK's own small base archive mapped."""
    import re

    from jobs.core.session import class_archive_path, java_binary
    archive = class_archive_path(base_cfg.spark.packages)
    assert archive is not None and archive.is_file(), f"setup did not build {archive}: see its build.log"
    jvm = spark.sparkContext._jvm
    assert f"-XX:SharedArchiveFile={archive}" in list(jvm.java.lang.management.ManagementFactory
                                                    .getRuntimeMXBean().getInputArguments())
    pid = jvm.java.lang.ProcessHandle.current().pid()
    info = subprocess.run([str(java_binary().parent / "jcmd"), str(pid), "VM.info"], capture_output=True, text=True, timeout=120).stdout
    mapped = re.search(r"CDS archive\(s\) mapped at: .*?size (\d+)", info)
    assert mapped and int(mapped.group(1)) >= archive.stat().st_size, mapped and mapped.group(0)
