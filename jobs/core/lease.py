"""The warehouse's single-writer lease: one writing job at a time per warehouse.

A job that writes tables holds `<warehouse>/_lease` while it runs: a small JSON file (job, pid, host,
boot id, start time, token) created atomically (O_EXCL, on a local or shared POSIX folder). A second
run waits for it (`lease.wait_minutes`, polling every few seconds) and then exits with code 4 and one line naming the holder. A holder that died without releasing (a
SIGKILL, a crash, a reboot) is recognised on the same host by its pid and boot id and its lease is
taken over, with a warning. A warehouse on a URI (HDFS, object stores) has no lease here: run one
scheduler per warehouse there and set lease.enabled to false.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from jobs.core.config import Config, join_path
from jobs.core.errors import ConfigError, WarehouseBusy

log = logging.getLogger("setlist.lease")

POLL_SECONDS = 2.0
_HELD: dict[str, str] = {}  # the lease files this process holds now: their tokens


def held(cfg: Config) -> str | None:
    """The token of the warehouse's lease when this process holds it now (it is then the warehouse's
    only writer: the bookkeeping appends the rows of new keys instead of replacing by key), else None."""
    return _HELD.get(join_path(cfg.warehouse, "_lease"))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    def __init__(self, cfg: Config, job: str):
        self.path = join_path(cfg.warehouse, "_lease")
        self.wait_s = cfg.lease.wait_minutes * 60.0
        self.me = {"job": job, "pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
                   "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "token": uuid.uuid4().hex}
        if "://" in self.path:
            raise ConfigError(f"{cfg.source}: warehouse: {cfg.warehouse}: the single-writer lease needs a local or "
                              f"shared POSIX folder; on HDFS or object stores run one scheduler per warehouse "
                              f"and set lease.enabled: false")

    # -- local folders -------------------------------------------------------------------------
    def _create(self) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            json.dump(self.me, out)
        return True

    def _holder(self) -> dict | None:
        try:
            return json.loads(Path(self.path).read_text() or "{}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written right now: read it again on the next poll

    def _stale(self, holder: dict) -> bool:
        return (holder.get("host") == self.me["host"] and holder.get("boot_id") == self.me["boot_id"]
                and isinstance(holder.get("pid"), int) and not _alive(holder["pid"])) \
            or (holder.get("host") == self.me["host"] and holder.get("boot_id") not in ("", self.me["boot_id"]))

    def _break(self, holder: dict) -> None:
        """Remove a dead holder's lease, unless someone else replaced it meanwhile."""
        aside = f"{self.path}.stale-{self.me['token']}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = json.loads(Path(aside).read_text() or "{}")
        if moved.get("token") != holder.get("token"):  # not the one we judged: put it back if we can
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        os.remove(aside)

    # -- protocol ------------------------------------------------------------------------------
    def __enter__(self) -> "Lease":
        started = time.monotonic()
        waiting_logged = False
        while not self._create():
            holder = self._holder()
            if holder is None or holder == {}:
                time.sleep(0.2)
                continue
            if self._stale(holder):
                log.warning("lease %s: its holder %s (pid %s, since %s) is gone; taking it over", self.path,
                            holder.get("job"), holder.get("pid"), holder.get("since"))
                self._break(holder)
                continue
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                raise WarehouseBusy(f"warehouse {os.path.dirname(self.path)} is busy: {holder.get('job')} holds it "
                                    f"(pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}); "
                                    f"waited {waited / 60:.1f} min (conf key lease.wait_minutes)")
            if not waiting_logged:
                log.info("lease %s: %s (pid %s) holds it since %s; waiting up to %.0f min", self.path,
                         holder.get("job"), holder.get("pid"), holder.get("since"), self.wait_s / 60)
                waiting_logged = True
            time.sleep(POLL_SECONDS)
        log.info("lease %s: taken by %s (pid %d)", self.path, self.me["job"], self.me["pid"])
        _HELD[self.path] = self.me["token"]
        return self

    def __exit__(self, *exc) -> None:
        _HELD.pop(self.path, None)
        holder = self._holder()
        if holder and holder.get("token") == self.me["token"]:
            os.remove(self.path)
