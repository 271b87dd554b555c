"""The process table read straight from /proc: one pass, a few small files per process.

psutil's per-process objects cost several times more than the files they
read; with thousands of processes on a host the difference is the collector's
whole budget. Per process this reads ``stat`` (every run), ``io`` and the
size of ``fd`` (user processes only: kernel threads have neither), and
``status`` once per process for its real user id (refreshed every
``UID_REFRESH_RUNS`` runs). Parsers take bytes so tests feed them fixture files.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PF_KTHREAD = 0x00200000  # task flag of kernel threads (include/linux/sched.h)

# The one-letter states of /proc/PID/stat, spelled as psutil spells them.
STATES = {
    "R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop",
    "Z": "zombie", "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "P": "parked", "I": "idle",
}

UID_REFRESH_RUNS = 20  # a process's user id is re-read every this many runs


class Proc(NamedTuple):
    """One process as read in one run (a pid and a start time: a pid used
    again later is another process); None where a file could not be read."""

    pid: int
    comm: str
    state: str
    ppid: int
    kernel: bool
    utime: int
    stime: int
    cutime: int
    cstime: int
    threads: int
    start: int
    rss: int
    uid: Optional[int]
    read_bytes: Optional[int]
    write_bytes: Optional[int]
    fds: Optional[int]


def parse_stat(data: bytes) -> Proc:
    """/proc/PID/stat, as a Proc without what other files say. The command
    name sits in parentheses and may itself hold spaces and parentheses, so
    fields are counted from the last ')'."""
    open_ = data.index(b"(")
    close = data.rindex(b")")
    comm = data[open_ + 1:close].decode("utf-8", "replace")
    f = data[close + 2:].split()
    return Proc(
        int(data[:open_]),
        comm,
        f[0].decode("ascii", "replace"),
        int(f[1]),
        bool(int(f[6]) & PF_KTHREAD),
        int(f[11]),
        int(f[12]),
        int(f[13]),
        int(f[14]),
        int(f[17]),
        int(f[19]),
        int(f[21]) * PAGE_SIZE,
        None,
        None,
        None,
        None,
    )


def parse_io(data: bytes) -> Tuple[int, int]:
    """(read_bytes, write_bytes) of /proc/PID/io: bytes the process made
    storage read and write (page cache hits and writes cancelled by truncation
    aside)."""
    parts = data.split()
    if len(parts) >= 12 and parts[8] == b"read_bytes:" and parts[10] == b"write_bytes:":
        return int(parts[9]), int(parts[11])
    fields = dict(zip(parts[::2], parts[1::2]))
    return int(fields[b"read_bytes:"]), int(fields[b"write_bytes:"])


def parse_status_uid(data: bytes) -> int:
    """The real user id from /proc/PID/status (the first number of ``Uid:``)."""
    at = data.index(b"\nUid:")
    return int(data[at + 5:data.index(b"\n", at + 5)].split()[0])


def parse_boot_time(data: bytes) -> float:
    """Unix time of boot: the ``btime`` line of /proc/stat."""
    at = data.index(b"btime ")
    return float(data[at + 6:data.index(b"\n", at)])


def parse_meminfo_total(data: bytes) -> int:
    """MemTotal of /proc/meminfo, in bytes."""
    at = data.index(b"MemTotal:")
    return int(data[at + 9:data.index(b"\n", at)].split()[0]) * 1024


def read_bytes(path: str, size: int = 8192) -> bytes:
    """The start of a small /proc file: os.open/os.read skip the buffered
    file object, which costs more than the read itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def fd_count_from_stat(procfs: str) -> bool:
    """Whether this kernel reports a process's open descriptors as the size of
    /proc/PID/fd (Linux 6.2 and later), which spares listing the directory."""
    try:
        listed = len(os.listdir(os.path.join(procfs, "self", "fd")))
        size = os.stat(os.path.join(procfs, "self", "fd")).st_size
    except OSError:
        return False
    # The listing holds its own descriptor for the directory, which may be
    # closed again by the time of the stat.
    return size > 0 and abs(size - listed) <= 1


class ProcTable:
    """Reads every process under ``procfs``, one at a time (``scan()``), so
    a table of thousands is never held whole."""

    def __init__(self, procfs: str = "/proc"):
        self.procfs = procfs
        self._fd_size = fd_count_from_stat(procfs)
        self._uids: Dict[int, int] = {}  # pid -> start << 32 | uid
        self._comms: Dict[str, str] = {}  # one string per command name
        self._runs = 0

    def boot_time(self) -> float:
        return parse_boot_time(read_bytes(os.path.join(self.procfs, "stat"), 1 << 20))

    def uptime(self) -> float:
        """Seconds since boot, from /proc/uptime."""
        return float(read_bytes(os.path.join(self.procfs, "uptime")).split()[0])

    def mem_total(self) -> int:
        return parse_meminfo_total(read_bytes(os.path.join(self.procfs, "meminfo")))

    def pids(self) -> List[int]:
        return [int(name) for name in os.listdir(self.procfs) if name.isdigit()]

    def read(self) -> List[Proc]:
        return list(self.scan())

    def scan(self) -> Iterator[Proc]:
        """Every process that could be read; one that exits mid-read is left out."""
        self._runs += 1
        refresh = self._runs % UID_REFRESH_RUNS
        uids = self._uids
        pids = self.pids()
        for pid in pids:
            base = f"{self.procfs}/{pid}"
            try:
                stat = parse_stat(read_bytes(base + "/stat", 4096))
            except (OSError, ValueError, IndexError):
                continue  # gone, or a kernel we cannot read: not counted
            comm = self._comms.get(stat.comm)
            if comm is None:
                if len(self._comms) > 4096:
                    self._comms.clear()
                comm = self._comms[stat.comm] = stat.comm
            if stat.kernel:
                yield stat._replace(comm=comm, uid=0)
                continue
            known = uids.get(pid)
            if known is not None and known >> 32 == stat.start and pid % UID_REFRESH_RUNS != refresh:
                uid: Optional[int] = known & 0xFFFFFFFF
            else:
                uid = self._read_uid(base)
                if uid is not None:
                    uids[pid] = stat.start << 32 | uid
            read, written = self._read_io(base)
            yield stat._replace(comm=comm, uid=uid, read_bytes=read, write_bytes=written, fds=self._read_fds(base))
        if len(uids) > len(pids):
            alive = set(pids)
            for pid in [p for p in uids if p not in alive]:
                del uids[pid]  # only the living are remembered

    @staticmethod
    def _read_uid(base: str) -> Optional[int]:
        try:
            return parse_status_uid(read_bytes(base + "/status"))
        except (OSError, ValueError):
            return None

    @staticmethod
    def _read_io(base: str) -> Tuple[Optional[int], Optional[int]]:
        try:
            return parse_io(read_bytes(base + "/io", 1024))
        except (OSError, ValueError, KeyError):
            return None, None  # another user's process without the right to read it, or gone

    def _read_fds(self, base: str) -> Optional[int]:
        try:
            if self._fd_size:
                return os.stat(base + "/fd").st_size
            return len(os.listdir(base + "/fd"))
        except OSError:
            return None

    def exe(self, pid: int) -> str:
        """Basename of the process's executable; "" when unreadable or none."""
        try:
            target = os.readlink(f"{self.procfs}/{pid}/exe")
        except OSError:
            return ""
        if target.endswith(" (deleted)"):
            target = target[: -len(" (deleted)")]
        return os.path.basename(target)

    def cmdline(self, pid: int, limit: int = 4096) -> Optional[str]:
        """The command line, arguments joined by spaces and cut at ``limit``
        bytes; None when unreadable."""
        try:
            data = read_bytes(f"{self.procfs}/{pid}/cmdline", limit)
        except OSError:
            return None
        return data.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
