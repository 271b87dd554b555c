"""Tests of the filesystem collector: mount table parsing, usage figures,
families, and statvfs calls that hang."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NameFilter, Paths
from hostagent.collectors.filesystem import (
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    FilesystemCollector,
    Mount,
    MountSample,
    Usage,
    host_path,
    local_mounts,
    parse_mounts,
    select_mounts,
    unescape,
    usage_from_statvfs,
)

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "filesystem" / "proc"
DEFAULT_POINTS = NameFilter(None, DEFAULT_MOUNT_POINTS_EXCLUDE)
DEFAULT_TYPES = NameFilter(None, DEFAULT_FS_TYPES_EXCLUDE)


def statvfs_result(blocks=1000, bfree=300, bavail=250, files=500, ffree=400, frsize=4096) -> os.statvfs_result:
    """An os.statvfs result with the given figures."""
    return os.statvfs_result((4096, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


def fixture_mounts():
    with open(FIXTURE_PROC / "1" / "mounts") as table:
        return parse_mounts(table)


def write_mounts(tmp_path: Path, *mountpoints: str) -> Paths:
    """A procfs tree whose self/mounts lists ext4 mounts at mountpoints."""
    table = tmp_path / "proc" / "self" / "mounts"
    table.parent.mkdir(parents=True)
    table.write_text("".join(f"/dev/sd{chr(97 + i)} {mp} ext4 rw 0 0\n" for i, mp in enumerate(mountpoints)))
    return Paths(procfs=str(tmp_path / "proc"))


# --------------------------------------------------------------------------
# Pure helpers


def test_unescape_octal_sequences():
    assert unescape(r"/mnt/My\040Photos") == "/mnt/My Photos"
    assert unescape(r"/a\011b\012c\134d") == "/a\tb\nc\\d"
    assert unescape("/plain") == "/plain"


def test_parse_mounts_unescapes_and_last_mount_wins():
    mounts = fixture_mounts()
    by_point = {m.mountpoint: m for m in mounts}
    assert by_point["/mnt/My Photos"] == Mount("/dev/sdb1", "/mnt/My Photos", "ext4", ("ro", "relatime"))
    assert "/srv/tab\tand\\back" in by_point
    assert by_point["/data"].device == "/dev/sde1" and by_point["/data"].fstype == "xfs"
    assert [m.mountpoint for m in mounts].count("/data") == 1
    assert mounts[-1].mountpoint == "/data"  # placed where the last mount stands
    assert len(mounts) == 16


def test_parse_mounts_skips_short_lines():
    assert parse_mounts(["\n", "garbage\n", "/dev/sda1 / ext4 rw 0 0\n"]) == (Mount("/dev/sda1", "/", "ext4", ("rw",)),)


def test_default_filters_keep_real_filesystems_only():
    kept = select_mounts(fixture_mounts(), DEFAULT_POINTS, DEFAULT_TYPES)
    assert [m.mountpoint for m in kept] == [
        "/run",
        "/",
        "/boot/efi",
        "/mnt/My Photos",
        "/srv/tab\tand\\back",
        "/mnt/nfs",
        "/data",
    ]


def test_include_filters():
    kept = select_mounts(fixture_mounts(), NameFilter("^/mnt/", None), NameFilter("^nfs", None))
    assert [m.mountpoint for m in kept] == ["/mnt/nfs"]


def test_readonly_from_mount_options():
    assert Mount("d", "/", "ext4", ("ro", "relatime")).readonly
    assert not Mount("d", "/", "ext4", ("rw", "errors=remount-ro")).readonly


def test_usage_from_statvfs():
    usage = usage_from_statvfs(statvfs_result(blocks=1000, bfree=300, bavail=250, files=500, ffree=400))
    assert usage == Usage(
        size=4_096_000,
        free=1_228_800,
        avail=1_024_000,
        used=2_867_200,
        usage_ratio=pytest.approx(700 / 950),
        files=500,
        files_free=400,
    )


def test_usage_of_empty_filesystem_and_zero_fragment_size():
    assert usage_from_statvfs(statvfs_result(blocks=0, bfree=0, bavail=0, files=0, ffree=0)).usage_ratio == 0.0
    # Some filesystems leave f_frsize 0; the block size applies then.
    assert usage_from_statvfs(statvfs_result(blocks=10, bfree=5, bavail=5, frsize=0)).size == 40_960


def test_host_path_joins_under_rootfs():
    assert host_path("/", "/mnt/nfs") == "/mnt/nfs"
    assert host_path("/host", "/") == "/host/"
    assert host_path("/host", "/mnt/My Photos") == "/host/mnt/My Photos"


# --------------------------------------------------------------------------
# Sample and families


def test_reads_init_mount_table_under_a_host_rootfs():
    calls = []

    def statvfs(path):
        calls.append(path)
        if path.endswith("/mnt/nfs"):
            raise OSError(116, "Stale file handle")
        return statvfs_result()

    collector = FilesystemCollector(paths=Paths(procfs=str(FIXTURE_PROC), rootfs="/host"), statvfs=statvfs)
    try:
        sample = collector.sample()
    finally:
        collector.close()
    assert sorted(calls) == sorted(
        ["/host/run", "/host/", "/host/boot/efi", "/host/mnt/My Photos", "/host/srv/tab\tand\\back", "/host/mnt/nfs", "/host/data"]
    )
    nfs = next(s for s in sample if s.mount.mountpoint == "/mnt/nfs")
    assert nfs.usage is None and "Stale file handle" in nfs.error
    got = samples_of(FilesystemCollector().families(sample))
    root = (("device", "/dev/nvme0n1p2"), ("fstype", "ext4"), ("mountpoint", "/"))
    assert got[("host_filesystem_size_bytes", root)] == 4_096_000
    assert got[("host_filesystem_device_error", root)] == 0
    photos = (("device", "/dev/sdb1"), ("fstype", "ext4"), ("mountpoint", "/mnt/My Photos"))
    assert got[("host_filesystem_readonly", photos)] == 1
    nfs_labels = (("device", "server:/export"), ("fstype", "nfs4"), ("mountpoint", "/mnt/nfs"))
    assert {name for (name, labels) in got if labels == nfs_labels} == {
        "host_filesystem_readonly",
        "host_filesystem_device_error",
    }
    assert got[("host_filesystem_device_error", nfs_labels)] == 1


def test_reads_init_mount_table_first_when_rootfs_is_root():
    collector = FilesystemCollector({"fs_types_exclude": None}, Paths(procfs=str(FIXTURE_PROC)), statvfs=lambda p: statvfs_result())
    try:
        points = {s.mount.mountpoint for s in collector.sample()}
    finally:
        collector.close()
    assert "/mnt/My Photos" in points and "/etc/hosts" not in points  # pid 1's table, not self's


def test_falls_back_to_own_mount_table_when_init_is_unreadable(tmp_path):
    paths = write_mounts(tmp_path, "/", "/srv")
    collector = FilesystemCollector(paths=paths, statvfs=lambda p: statvfs_result())
    try:
        assert [s.mount.mountpoint for s in collector.sample()] == ["/", "/srv"]
    finally:
        collector.close()


def test_service_sandbox_does_not_make_every_mount_read_only(tmp_path):
    # systemd's ProtectSystem=strict remounts everything read-only in the
    # service's own namespace; init's table still says how the host mounts it.
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "1" / "mounts").write_text("/dev/vda1 / ext4 rw,relatime 0 0\n/dev/vdb1 /srv xfs ro,relatime 0 0\n")
    (proc / "self" / "mounts").write_text(
        "/dev/vda1 / ext4 ro,relatime 0 0\n/dev/vdb1 /srv xfs ro,relatime 0 0\n/dev/vda1 /tmp ext4 ro,relatime 0 0\n"
    )
    collector = FilesystemCollector(paths=Paths(procfs=str(proc)), statvfs=lambda p: statvfs_result())
    try:
        got = samples_of(collector.families(collector.sample()))
    finally:
        collector.close()
    ro = {dict(labels)["mountpoint"]: v for (name, labels), v in got.items() if name == "host_filesystem_readonly"}
    assert ro == {"/": 0, "/srv": 1}  # and no private /tmp


def test_missing_mount_table_is_a_failure_of_the_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        FilesystemCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_families_from_hand_made_sample():
    ok = MountSample(Mount("/dev/sda1", "/", "ext4", ("rw",)), Usage(1000, 400, 300, 600, 0.666, 50, 20))
    failed = MountSample(Mount("srv:/x", "/mnt/x", "nfs", ("ro",)), None, "timed out")
    fams = list(FilesystemCollector().families((ok, failed)))
    assert [f.name for f in fams] == [s.name for s in FilesystemCollector.metrics]
    root = (("device", "/dev/sda1"), ("fstype", "ext4"), ("mountpoint", "/"))
    x = (("device", "srv:/x"), ("fstype", "nfs"), ("mountpoint", "/mnt/x"))
    assert samples_of(fams) == {
        ("host_filesystem_size_bytes", root): 1000,
        ("host_filesystem_free_bytes", root): 400,
        ("host_filesystem_avail_bytes", root): 300,
        ("host_filesystem_used_bytes", root): 600,
        ("host_filesystem_usage_ratio", root): 0.666,
        ("host_filesystem_files", root): 50,
        ("host_filesystem_files_free", root): 20,
        ("host_filesystem_readonly", root): 0,
        ("host_filesystem_device_error", root): 0,
        ("host_filesystem_readonly", x): 1,
        ("host_filesystem_device_error", x): 1,
    }


# --------------------------------------------------------------------------
# statvfs that hangs


class HangingStatvfs:
    """statvfs stand-in: paths in ``hang`` block until ``release`` is set."""

    def __init__(self, *hang: str):
        self.hang = set(hang)
        self.release = threading.Event()
        self.calls: Counter = Counter()

    def __call__(self, path: str) -> os.statvfs_result:
        self.calls[path] += 1
        if path in self.hang:
            self.release.wait(20)  # bounded so a failing test cannot hang the suite
        return statvfs_result()


def errors_of(sample):
    return {s.mount.mountpoint: s.usage is None for s in sample}


def test_hung_mount_blocks_nothing_and_recovers(tmp_path):
    statvfs = HangingStatvfs("/mnt/dead")
    paths = write_mounts(tmp_path, "/", "/mnt/dead", "/data", "/srv")
    collector = FilesystemCollector({"statvfs_timeout": 1.0}, paths, statvfs=statvfs)
    try:
        start = time.monotonic()
        first = collector.sample()
        assert time.monotonic() - start < 1.0 + 1.0
        assert errors_of(first) == {"/": False, "/mnt/dead": True, "/data": False, "/srv": False}
        assert "1s" in next(s.error for s in first if s.usage is None)

        # The hung call still holds its thread: not resubmitted, no new thread.
        start = time.monotonic()
        second = collector.sample()
        assert time.monotonic() - start < 0.5  # the others answer at once, well inside the timeout
        assert errors_of(second)["/mnt/dead"] and not errors_of(second)["/"]
        assert "not returned" in next(s.error for s in second if s.usage is None)
        assert statvfs.calls["/mnt/dead"] == 1 and statvfs.calls["/"] == 2
        assert collector._pool.threads <= 4

        statvfs.release.set()
        deadline = time.monotonic() + 5
        while collector._pool.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        third = collector.sample()
        assert not any(errors_of(third).values())
        assert statvfs.calls["/mnt/dead"] == 2
    finally:
        statvfs.release.set()
        collector.close()


def test_mounts_queued_behind_hung_ones_still_get_a_worker(tmp_path):
    statvfs = HangingStatvfs("/mnt/dead1", "/mnt/dead2")
    paths = write_mounts(tmp_path, "/mnt/dead1", "/mnt/dead2", "/", "/data")
    collector = FilesystemCollector({"statvfs_timeout": 2.0, "statvfs_workers": 2}, paths, statvfs=statvfs)
    try:
        first = collector.sample()
        # Both workers took a hung mount; each handed its place to a new
        # thread, which answered for the other two within the same run.
        assert errors_of(first) == {"/mnt/dead1": True, "/mnt/dead2": True, "/": False, "/data": False}
        start = time.monotonic()
        second = collector.sample()
        assert time.monotonic() - start < 2.0  # no wait for the timeout: nothing new hung
        assert errors_of(second) == {"/mnt/dead1": True, "/mnt/dead2": True, "/": False, "/data": False}
        assert "has not returned" in next(s.error for s in second if s.mount.mountpoint == "/mnt/dead1")
        # The hung mounts were asked once; two threads wait on them, beside the two workers.
        assert statvfs.calls["/mnt/dead1"] == 1 and statvfs.calls["/"] == 2
        assert collector._pool.threads <= 4
    finally:
        statvfs.release.set()
        collector.close()


def test_local_mounts_are_asked_first_and_alone_once_the_hung_budget_is_spent(tmp_path):
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    nfs = "".join(f"srv:/e{i} /mnt/nfs{i} nfs4 rw 0 0\n" for i in range(5))
    proc.joinpath("mounts").write_text(nfs + "/dev/vda1 / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n")
    statvfs = HangingStatvfs(*(f"/mnt/nfs{i}" for i in range(5)))
    options = {"statvfs_timeout": 1.0, "statvfs_workers": 1, "statvfs_hung_max": 2}
    collector = FilesystemCollector(options, Paths(procfs=str(tmp_path / "proc")), statvfs=statvfs)
    try:
        for _ in range(3):
            sample = collector.sample()
            assert errors_of(sample) == {**{f"/mnt/nfs{i}": True for i in range(5)}, "/": False, "/run": False}
            assert collector._pool.threads <= 1 + 2
        # Two NFS mounts were asked and hung; the other three never were.
        assert sum(statvfs.calls[f"/mnt/nfs{i}"] for i in range(5)) == 2
        assert "not asked" in next(s.error for s in sample if s.mount.mountpoint == "/mnt/nfs4")
    finally:
        statvfs.release.set()
        collector.close()


def test_local_mounts_are_those_the_kernel_answers_from_memory():
    mounts = parse_mounts(
        [
            "/dev/vda1 / ext4 rw 0 0\n",
            "tmpfs /run tmpfs rw 0 0\n",
            "srv:/export /mnt/nfs nfs4 rw 0 0\n",
            "tmpfs /mnt/nfs/scratch tmpfs rw 0 0\n",  # the path walk crosses the NFS mount
            "/dev/sdb1 /mnt/nfs2 xfs rw 0 0\n",  # a name that only starts like one
            "sshfs#me@host: /mnt/ssh fuse.sshfs rw 0 0\n",
            "/dev/sdc1 /mnt/win fuseblk rw 0 0\n",  # ntfs-3g: a daemon answers
            "//srv/share /mnt/smb cifs rw 0 0\n",
        ]
    )
    assert local_mounts(mounts) == {"/", "/run", "/mnt/nfs2"}


def test_hung_statvfs_does_not_delay_process_exit(tmp_path):
    script = textwrap.dedent(
        """
        import threading
        from hostagent.collectors.base import Paths
        from hostagent.collectors.filesystem import FilesystemCollector

        forever = threading.Event()
        def statvfs(path):
            forever.wait()
        collector = FilesystemCollector({"statvfs_timeout": 0.2}, Paths(procfs=%r), statvfs=statvfs)
        print(len(collector.collect()))
        """
    ) % write_mounts(tmp_path, "/mnt/dead").procfs
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": src}, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9"


# --------------------------------------------------------------------------
# The real machine


def test_real_machine():
    collector = FilesystemCollector()
    try:
        fams = collector.collect()
    finally:
        collector.close()
    specs = {s.name: s for s in collector.metrics}
    assert [f.name for f in fams] == list(specs)
    got = samples_of(fams)
    assert got, "no filesystem reported at all"
    by_mount = {}
    assert_well_formed(FilesystemCollector, got)
    for (name, labels), value in got.items():
        by_mount.setdefault(dict(labels)["mountpoint"], {})[name] = value
    for point, values in by_mount.items():
        assert values["host_filesystem_readonly"] in (0, 1)
        if values["host_filesystem_device_error"]:
            continue
        assert values["host_filesystem_used_bytes"] == values["host_filesystem_size_bytes"] - values["host_filesystem_free_bytes"]
        assert 0 <= values["host_filesystem_usage_ratio"] <= 1
        assert values["host_filesystem_files_free"] <= values["host_filesystem_files"]
    if "/" in by_mount and not by_mount["/"]["host_filesystem_device_error"]:
        st = os.statvfs("/")
        assert by_mount["/"]["host_filesystem_size_bytes"] == st.f_blocks * st.f_frsize
