"""Filesystem space and inodes per mount point, with a timeout on statvfs.

Mounts come from the kernel's mount table; each statvfs runs on a bounded
pool of daemon threads (``hostagent.hangsafe``) so a dead network mount is
reported, not waited for, and is not asked again until its call returns.
Local disks are asked first and, when ``statvfs_hung_max`` calls on other
mounts hang, alone::

    # HELP host_filesystem_avail_bytes Space available to unprivileged users.
    # TYPE host_filesystem_avail_bytes gauge
    host_filesystem_avail_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 4.2e+10
    # HELP host_filesystem_usage_ratio Used space over space usable by users (what df shows).
    # TYPE host_filesystem_usage_ratio gauge
    host_filesystem_usage_ratio{device="/dev/vda",fstype="ext4",mountpoint="/"} 0.31
    # HELP host_filesystem_device_error Whether statvfs failed or timed out (1) for the mount.
    # TYPE host_filesystem_device_error gauge
    host_filesystem_device_error{device="srv:/export",fstype="nfs4",mountpoint="/mnt/nfs"} 1.0
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Set, Tuple

from ..hangsafe import HangSafePool
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NameFilter, Option, Paths, register

log = logging.getLogger(__name__)

LABELS = ("device", "mountpoint", "fstype")
SIZE = MetricSpec("host_filesystem_size_bytes", "gauge", "Total size of the filesystem.", LABELS, "bytes")
FREE = MetricSpec("host_filesystem_free_bytes", "gauge", "Free space, including space reserved for root.", LABELS, "bytes")
AVAIL = MetricSpec("host_filesystem_avail_bytes", "gauge", "Space available to unprivileged users.", LABELS, "bytes")
USED = MetricSpec("host_filesystem_used_bytes", "gauge", "Used space: size minus free.", LABELS, "bytes")
USAGE = MetricSpec(
    "host_filesystem_usage_ratio", "gauge", "Used space over space usable by users (what df shows).", LABELS, "ratio"
)
FILES = MetricSpec("host_filesystem_files", "gauge", "Total inodes of the filesystem.", LABELS)
FILES_FREE = MetricSpec("host_filesystem_files_free", "gauge", "Free inodes of the filesystem.", LABELS)
READONLY = MetricSpec("host_filesystem_readonly", "gauge", "Whether the mount is read-only (1) or not (0).", LABELS)
DEVICE_ERROR = MetricSpec(
    "host_filesystem_device_error", "gauge", "Whether statvfs failed or timed out (1) for the mount.", LABELS
)

DEFAULT_MOUNT_POINTS_EXCLUDE = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)

# --------------------------------------------------------------------------
# Sample data and pure helpers


class Mount(NamedTuple):
    """One line of the kernel's mount table, unescaped."""

    device: str
    mountpoint: str
    fstype: str
    options: Tuple[str, ...]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    @property
    def labels(self) -> List[str]:
        """Label values in the order of LABELS."""
        return [self.device, self.mountpoint, self.fstype]


class Usage(NamedTuple):
    """Space and inode figures of one filesystem, in bytes and inodes."""

    size: int
    free: int
    avail: int
    used: int
    usage_ratio: float
    files: int
    files_free: int


class MountSample(NamedTuple):
    """A mount and its usage; usage is None when statvfs failed or timed out."""

    mount: Mount
    usage: Optional[Usage]
    error: str = ""  # why usage is None, for logs


_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes in a mount table field (\\040 is a space)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(lines: Iterable[str]) -> Tuple[Mount, ...]:
    """Parse /proc/<pid>/mounts text; a mount point mounted twice keeps its
    last (topmost, visible) mount, placed where that last mount stands."""
    table: Dict[str, Mount] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        mount = Mount(unescape(fields[0]), unescape(fields[1]), fields[2], tuple(fields[3].split(",")))
        table.pop(mount.mountpoint, None)
        table[mount.mountpoint] = mount
    return tuple(table.values())


def select_mounts(mounts: Iterable[Mount], points: NameFilter, types: NameFilter) -> Tuple[Mount, ...]:
    """The mounts whose mount point and filesystem type both pass."""
    return tuple(m for m in mounts if points(m.mountpoint) and types(m.fstype))


def usage_from_statvfs(st: Any) -> Usage:
    """Usage figures from an os.statvfs result; used/(used+avail) as df does."""
    unit = st.f_frsize or st.f_bsize
    size, free, avail = st.f_blocks * unit, st.f_bfree * unit, st.f_bavail * unit
    used = max(size - free, 0)
    usable = used + avail
    return Usage(size, free, avail, used, used / usable if usable else 0.0, st.f_files, st.f_ffree)


MEMORY_FS_TYPES = frozenset({"tmpfs", "ramfs"})


def local_mounts(mounts: Iterable[Mount]) -> FrozenSet[str]:
    """Mount points whose statvfs the kernel answers from memory: a block
    device's filesystem (FUSE aside) or a memory one, and not mounted below
    one of the other mounts (but ``/``), since the path walk to it crosses
    that one. Network and FUSE filesystems ask a server or a daemon, which
    may never answer."""
    table = tuple(mounts)

    def answers_locally(m: Mount) -> bool:
        return not m.fstype.startswith("fuse") and (m.device.startswith("/dev/") or m.fstype in MEMORY_FS_TYPES)

    others = [m.mountpoint + "/" for m in table if m.mountpoint != "/" and not answers_locally(m)]
    return frozenset(m.mountpoint for m in table if answers_locally(m) and not m.mountpoint.startswith(tuple(others)))


def host_path(rootfs: str, mountpoint: str) -> str:
    """Where the agent sees a host mount point when the host root is at rootfs."""
    return os.path.join(rootfs, mountpoint.lstrip("/"))


# --------------------------------------------------------------------------
# The collector


@register
class FilesystemCollector(BaseCollector):
    """Size, free, available and used space and inodes of each real mount."""

    name = "filesystem"
    help = "Filesystem space and inodes per mount point (statvfs with a timeout)"
    options = {
        **NameFilter.options("mount_points", "mount points", DEFAULT_MOUNT_POINTS_EXCLUDE, "the default drops virtual and container-internal mounts"),
        **NameFilter.options("fs_types", "filesystem types", DEFAULT_FS_TYPES_EXCLUDE, "the default drops pseudo filesystems"),
        "statvfs_timeout": Option.seconds(5.0, "How long one run waits for statvfs answers before reporting device_error."),
        "statvfs_workers": Option.integer(
            4, "Threads asking statvfs; one blocked for 0.1 s hands its place to a new thread.", lo=1, hi=64
        ),
        "statvfs_hung_max": Option.integer(
            128,
            "Most statvfs calls on network and FUSE mounts in flight at once; a hung mount holds one (and a"
            " thread) and is not asked again until it answers; with that many hung, only local disks are asked."
            " Threads in all: at most statvfs_workers + statvfs_hung_max.",
            lo=1,
            hi=4096,
        ),
    }
    metrics = (SIZE, FREE, AVAIL, USED, USAGE, FILES, FILES_FREE, READONLY, DEVICE_ERROR)

    def __init__(
        self,
        options: Optional[Mapping[str, Any]] = None,
        paths: Optional[Paths] = None,
        statvfs: Callable[[str], Any] = os.statvfs,
    ):
        super().__init__(options, paths)
        self._statvfs = statvfs
        self._pool: Optional[HangSafePool] = None
        self._stuck: Set[str] = set()  # mount points whose statvfs had not returned at the last run
        self._budget_spent = False  # statvfs_hung_max of them were not local
        self._points = NameFilter.from_config(self.config, "mount_points")
        self._types = NameFilter.from_config(self.config, "fs_types")

    def mounts_paths(self) -> Tuple[str, ...]:
        """Mount tables to try, in order. Init's comes first: a service
        sandbox (systemd's ProtectSystem, PrivateTmp) rewrites the agent's own
        table, marking every mount read-only and adding private ones, while
        init's shows the host as it is. The agent's own is the fallback where
        init's cannot be read, unless the host root is mounted elsewhere (a
        container), where only init's describes the host."""
        init = os.path.join(self.paths.procfs, "1", "mounts")
        if os.path.normpath(self.paths.rootfs) != "/":
            return (init,)
        return (init, os.path.join(self.paths.procfs, "self", "mounts"))

    def read_mount_table(self) -> Tuple[Mount, ...]:
        candidates = self.mounts_paths()
        for i, path in enumerate(candidates):
            try:
                with open(path, encoding="utf-8", errors="replace") as table:
                    return parse_mounts(table)
            except (PermissionError, FileNotFoundError):
                if i == len(candidates) - 1:
                    raise
        raise AssertionError("unreachable")

    def sample(self) -> Tuple[MountSample, ...]:
        mounts = select_mounts(self.read_mount_table(), self._points, self._types)
        if self._pool is None:
            self._pool = HangSafePool(
                self._statvfs, self.config["statvfs_workers"], self.config["statvfs_hung_max"], "hostagent-statvfs"
            )
        paths = {m.mountpoint: host_path(self.paths.rootfs, m.mountpoint) for m in mounts}
        local = local_mounts(mounts)
        outcomes = self._pool.run(list(paths.values()), self.config["statvfs_timeout"], {paths[p] for p in local})
        out = []
        for mount in mounts:
            outcome = outcomes[paths[mount.mountpoint]]
            if outcome.error:
                log.debug("statvfs %s: %s", mount.mountpoint, outcome.error)
                out.append(MountSample(mount, None, outcome.error))
            else:
                out.append(MountSample(mount, usage_from_statvfs(outcome.value)))
        self._log_changes(self._pool.stuck(), paths, self._pool.budget_spent)
        return tuple(out)

    def _log_changes(self, hung: Mapping[str, float], paths: Mapping[str, str], full: bool) -> None:
        """One line when a mount's statvfs hangs, when it returns, and when
        the budget for hung calls is spent or free again."""
        stuck = {point for point, path in paths.items() if path in hung}
        for point in sorted(stuck - self._stuck):
            log.warning(
                "statvfs %s has not answered within %gs; not asked again until that call returns (%d hung)",
                point, self.config["statvfs_timeout"], len(hung),
            )  # fmt: skip
        for point in sorted(self._stuck - stuck):
            if point in paths:
                log.info("statvfs %s answered again", point)
            else:
                log.info("statvfs %s had not answered when it was unmounted", point)
        self._stuck = stuck
        if full and not self._budget_spent:
            log.warning(
                "statvfs: %d calls on network and FUSE mounts have not returned (statvfs_hung_max); "
                "only local mounts are asked until one does", self.config["statvfs_hung_max"],
            )  # fmt: skip
        elif self._budget_spent and not full:
            log.info("statvfs: a hung call returned; network and FUSE mounts are asked again")
        self._budget_spent = full

    def families(self, sample: Tuple[MountSample, ...]) -> Iterator[Metric]:
        fields = ((SIZE, "size"), (FREE, "free"), (AVAIL, "avail"), (USED, "used"), (USAGE, "usage_ratio"),
                  (FILES, "files"), (FILES_FREE, "files_free"))  # fmt: skip
        for spec, field in fields:
            fam = spec.family()
            for item in sample:
                if item.usage is not None:
                    fam.add_metric(item.mount.labels, getattr(item.usage, field))
            yield fam
        readonly, error = READONLY.family(), DEVICE_ERROR.family()
        for item in sample:
            readonly.add_metric(item.mount.labels, 1 if item.mount.readonly else 0)
            error.add_metric(item.mount.labels, 1 if item.usage is None else 0)
        yield from (readonly, error)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
