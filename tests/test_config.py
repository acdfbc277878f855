"""Config validation: every bad file or flag is one line naming the file and the key, exit 2."""
from __future__ import annotations

import subprocess
import textwrap
import time

import pytest

from conftest import ROOT
from jobs.config import load_config, with_overrides
from jobs.errors import ConfigError
from jobs.main import main


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
    assert err == f"setlist: error: {path}: spark.mastr: unknown key (known here: app_name, conf, master, packages)"
    assert main(["clean", "--conf", str(path), "--date", "2026-02-30"]) == 2
    assert "--date 2026-02-30: not a date" in capsys.readouterr().err
    assert main(["nosuchjob"]) == 2


def test_submit_sh_rejects_bad_config_fast_with_exit_2(tmp_path):
    path = write(tmp_path, "warehouse: /w\nraw_path: /r\nclean: {session_gap_minutes: -5}\n")
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / "submit.sh"), "clean", "--conf", str(path), "--date", "2026-01-01"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"setlist: error: {path}: clean.session_gap_minutes: must be positive, got -5"
    assert time.monotonic() - started < 15  # no JVM was started
