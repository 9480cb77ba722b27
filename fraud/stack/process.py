"""A background server process that outlives the command that started it, and knows whether it is ours.

`fraudctl up` returns while the servers keep running, so the only link between a later `down`/`status` and the
process is a pid file. A bare pid is not enough: after a crash or a reboot the same number may belong to an
unrelated program, and killing that would be a disaster. The pid file therefore records the machine's boot time and
the process's start time (both from psutil, so this works on Linux and macOS alike); a process is ours only when
both still match. Everything else
is a stale pid file, which is removed without touching the process it points at.

Each server runs in its own session (``start_new_session``), so it is a process-group leader: SIGTERM to the
group reaches the workers it forks (MLflow execs uvicorn as a child), and terminal signals sent to the shell
that ran `fraudctl up` do not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_DEAD = {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}  # exited (not reaped), dead
_SAME_START_S = 0.01
"""Start times (seconds since the epoch, as psutil derives them) closer than this are the same process start."""

# Popen objects of the servers this Python process started: kept so their exit is reaped (no zombie that
# still answers `kill -0`) and so Python does not warn that a subprocess is "still running" on exit.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcStat:
    """What the ownership and group checks need to know about a process."""

    state: str
    pgrp: int
    start_time: float
    """Seconds since the epoch (psutil's ``create_time``)."""


def read_stat(pid: int) -> ProcStat | None:
    """The process's state, group and start time, or None when no such process exists (or it vanished)."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return ProcStat(state=process.status(), pgrp=os.getpgid(pid), start_time=process.create_time())
    except (psutil.Error, ProcessLookupError, PermissionError):
        return None


def boot_id() -> str:
    """Identifies this boot, so a pid file written before a reboot is never taken for a live process."""
    return f"{psutil.boot_time():.0f}"


def command_line(pid: int) -> str:
    """The process's command line as one string ('' when it is gone or unreadable)."""
    try:
        return " ".join(psutil.Process(pid).cmdline()).strip()
    except psutil.Error:
        return ""


def is_alive(pid: int) -> bool:
    """True while the process runs or is still exiting; an exited, unreaped zombie counts as gone.

    A multi-threaded server (weed is Go) shows its main thread as a zombie while the other threads are still
    tearing down, and until the last one has, its sockets stay open. So the threads decide, not the main one.
    """
    _reap(pid)
    try:
        process = psutil.Process(pid)
        if process.status() not in _DEAD:
            return True
        threads = [thread.id for thread in process.threads()]
    except psutil.Error:
        return False
    return any(_thread_state(tid) not in _DEAD for tid in threads if tid != pid)


def _thread_state(tid: int) -> str:
    """A thread's state (on Linux a thread id is addressable like a pid; elsewhere it reads as dead)."""
    try:
        return str(psutil.Process(tid).status())
    except psutil.Error:
        return psutil.STATUS_DEAD


def _reap(pid: int) -> None:
    """Collect the exit status of a server this process started, so it stops being a zombie.

    Only our own Popen objects are polled: a blind ``waitpid`` could steal the exit status of an unrelated child.
    """
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def group_members(pgid: int, *, started_at_or_after: float = 0.0) -> list[int]:
    """Live processes in a process group (started no earlier than the given time, seconds since the epoch)."""
    members = []
    for process in psutil.process_iter():
        stat = read_stat(process.pid)
        if (
            stat is not None
            and stat.pgrp == pgid
            and stat.start_time >= started_at_or_after - _SAME_START_S
            and is_alive(process.pid)
        ):
            members.append(process.pid)
    return members


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to tell our process from a stranger that got the same pid."""

    pid: int
    start_time: float
    boot_id: str
    command: tuple[str, ...]
    config: str = ""
    """Digest of the configuration the server was started with (see `StackService.config_fingerprint`)."""

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "command": list(self.command)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> PidRecord:
        data = json.loads(text)
        return cls(
            pid=int(data["pid"]),
            start_time=float(data["start_time"]),
            boot_id=str(data["boot_id"]),
            command=tuple(str(part) for part in data["command"]),
            config=str(data.get("config", "")),
        )

    def matches_live_process(self) -> bool:
        """The recorded pid runs, and it is the very process we started (same boot, same start time)."""
        if self.boot_id != boot_id() or not is_alive(self.pid):
            return False
        stat = read_stat(self.pid)
        return stat is not None and abs(stat.start_time - self.start_time) < _SAME_START_S


class ManagedProcess:
    """One detached server: start it, find it again from its pid file, stop it and only it."""

    def __init__(self, name: str, pid_path: Path, log_path: Path) -> None:
        self.name = name
        self.pid_path = pid_path
        self.log_path = log_path

    # --- state ---------------------------------------------------------------------------------------------
    def record(self) -> PidRecord | None:
        """The pid file's content; an unreadable or corrupt file reads as None (and is stale)."""
        try:
            return PidRecord.from_json(self.pid_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable pid file %s (%s); treating it as stale", self.pid_path, exc)
            return None

    def running_pid(self) -> int | None:
        """The pid of our live process, or None (no pid file, a dead pid, or a pid now used by another program)."""
        record = self.record()
        return record.pid if record is not None and record.matches_live_process() else None

    def clear_stale(self) -> bool:
        """Remove a pid file that no longer points at our process. Returns True when one was removed.

        The process the recorded pid now belongs to, if any, is never signalled (see `_stop_orphans` for the
        workers of ours that a dead server may have left behind).
        """
        if not self.pid_path.exists() or self.running_pid() is not None:
            return False
        self._stop_orphans(self.record())
        log.info("%s: removing stale pid file %s", self.name, self.pid_path)
        self.pid_path.unlink(missing_ok=True)
        return True

    def _stop_orphans(self, record: PidRecord | None) -> bool:
        """Stop workers left behind by our server whose leader died. Returns True when there were any.

        They are still ours, and would hold the server's port: same boot, in the process group the leader
        created (a pid cannot be reused while its group exists), started after it, running the same program.
        """
        if record is None or record.boot_id != boot_id() or is_alive(record.pid):
            return False
        program = Path(record.command[0]).name if record.command else ""
        orphans = [
            pid
            for pid in group_members(record.pid, started_at_or_after=record.start_time)
            if program and program in command_line(pid)
        ]
        if not orphans:
            return False
        log.warning("%s: stopping workers %s left behind by dead pid %d", self.name, orphans, record.pid)
        self._terminate(orphans, group=None, timeout=10.0)
        return True

    # --- start ---------------------------------------------------------------------------------------------
    def start(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, config: str = "") -> int:
        """Start the command detached, output to the log file (the previous log is kept as ``.1``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        with self.log_path.open("ab") as log_file:
            child = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        _children[child.pid] = child
        stat = read_stat(child.pid)
        record = PidRecord(
            pid=child.pid,
            start_time=stat.start_time if stat else 0.0,
            boot_id=boot_id(),
            command=tuple(command),
            config=config,
        )
        tmp = self.pid_path.with_name(f".{self.pid_path.name}.{os.getpid()}")
        tmp.write_text(record.to_json())
        tmp.replace(self.pid_path)
        log.info("%s: started pid %d, log %s", self.name, child.pid, self.log_path)
        return child.pid

    def exit_code(self, pid: int) -> int | None:
        """Exit status of a server this Python process started and that has exited (else None)."""
        child = _children.get(pid)
        return child.poll() if child is not None else None

    # --- stop ----------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 15.0) -> bool:
        """Stop our process and its group, remove the pid file. Returns True when something was stopped.

        A pid file that does not point at our process is removed, and only workers our dead server left behind
        are signalled, never the process that now has the recorded pid.
        """
        record = self.record()
        if record is None or not record.matches_live_process():
            stopped = self._stop_orphans(record)
            self.clear_stale()
            return stopped
        members = group_members(record.pid, started_at_or_after=record.start_time)
        log.info("%s: stopping pid %d (group %s)", self.name, record.pid, members)
        self._terminate(members or [record.pid], group=record.pid, timeout=timeout)
        self.pid_path.unlink(missing_ok=True)
        return True

    def _terminate(self, pids: list[int], group: int | None, timeout: float) -> None:
        """SIGTERM, wait up to ``timeout`` for every pid to be gone, then SIGKILL what is left."""
        self._signal(pids, group, signal.SIGTERM)
        if self._wait_gone(pids, timeout):
            return
        survivors = [pid for pid in pids if is_alive(pid)]
        log.warning("%s: %s ignored SIGTERM for %.0f s; sending SIGKILL", self.name, survivors, timeout)
        self._signal(survivors, group, signal.SIGKILL)
        self._wait_gone(survivors, 5.0)

    @staticmethod
    def _signal(pids: list[int], group: int | None, sig: signal.Signals) -> None:
        """Signal the whole group when we lead one (it reaches forked workers), else each verified pid."""
        if group is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    @staticmethod
    def _wait_gone(pids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if not any(is_alive(pid) for pid in pids):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
