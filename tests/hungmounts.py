#!/usr/bin/env python3
"""Real FUSE mounts that hang, in a private mount and pid namespace.

    unshare --mount --propagation private --pid --fork --mount-proc --kill-child \\
        python tests/hungmounts.py SPEC.json

Run as the first process of a new pid namespace (so ``/proc/1/mounts`` is
this namespace's table, as it is for an agent in a container), this script
mounts, under ``spec["dir"]``:

- ``dead-<i>``: FUSE mounts whose daemon never reads its device, so every
  statvfs on them blocks from the start (a dead NFS server);
- ``flaky-<i>``: FUSE mounts that answer until SIGUSR1, then hold every
  request unanswered until SIGUSR2 (a server that goes away and comes back);
- ``ok-<i>``: FUSE mounts that always answer (a healthy network filesystem);
- ``tmpfs-<i>``: tmpfs mounts (healthy local filesystems).

Then it writes ``spec["ready_file"]`` (the mount points, as JSON), starts each
command of ``spec["commands"]`` with its output in the matching file of
``spec["logs"]``, and waits. SIGTERM stops the commands (SIGTERM, then SIGKILL
after ``spec["stop_timeout"]``) and exits with the first command's status;
after ``spec["lifetime"]`` seconds it does the same by itself. When it ends
the namespace ends with it: the kernel kills what is left in it, closing the
FUSE devices aborts every pending request, and the mounts are gone. Nothing
outside the namespace ever sees them.

Standard library only: ``bench/hungmounts`` uses it too.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

# FUSE protocol (linux/fuse.h): the few messages a statfs needs.
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_OUT = struct.Struct("<IIIIHHIIHHI7I")  # major, minor, readahead, flags, max_background, congestion, max_write, time_gran, max_pages, map_alignment, flags2, unused
STATFS_OUT = struct.Struct("<QQQQQIIII6I")  # blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, padding, spare
ATTR_OUT = struct.Struct("<QII" + "QQQQQQIIIIIIIIII")  # attr_valid, nsec, dummy, then struct fuse_attr
FUSE_GETATTR, FUSE_FORGET, FUSE_STATFS, FUSE_INIT, FUSE_INTERRUPT, FUSE_BATCH_FORGET = 3, 2, 17, 26, 36, 42
NO_REPLY = (FUSE_FORGET, FUSE_BATCH_FORGET)
READ_BUFFER = 1 << 20

# What the answering mounts report: 1000 blocks of 4 KiB, 250 free.
STATFS = dict(blocks=1000, bfree=250, bavail=250, files=100, ffree=50, bsize=4096)

libc = ctypes.CDLL(None, use_errno=True)


def mount_fuse(source: str, target: str) -> int:
    """Mount a FUSE filesystem at target; returns the open /dev/fuse fd that serves it."""
    fd = os.open("/dev/fuse", os.O_RDWR)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(source.encode(), target.encode(), b"fuse.hostagenttest", 0, options) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"mount {target}: {os.strerror(err)}")
    return fd


def mount_tmpfs(target: str) -> None:
    if libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"size=1m") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def reply(fd: int, unique: int, body: bytes = b"", error: int = 0) -> None:
    try:
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body)
    except OSError as exc:  # ENOENT: the request was interrupted meanwhile
        if exc.errno not in (errno.ENOENT, errno.ENODEV):
            raise


def answer(fd: int, request: bytes) -> None:
    """Answer one request: INIT, STATFS and GETATTR of the root; ENOSYS otherwise."""
    _, opcode, unique, _nodeid, *_ = IN_HEADER.unpack_from(request)
    if opcode in NO_REPLY:
        return
    if opcode == FUSE_INIT:
        reply(fd, unique, INIT_OUT.pack(7, 31, 0, 0, 16, 12, 4096, 1, 1, 0, 0, *([0] * 7)))
    elif opcode == FUSE_STATFS:
        s = STATFS
        reply(fd, unique, STATFS_OUT.pack(s["blocks"], s["bfree"], s["bavail"], s["files"], s["ffree"], s["bsize"], 255, s["bsize"], 0, *([0] * 6)))
    elif opcode == FUSE_GETATTR:
        now = int(time.time())
        attr = (1, 0, 0, now, now, now, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
        reply(fd, unique, ATTR_OUT.pack(1, 0, 0, *attr))
    elif opcode != FUSE_INTERRUPT:
        reply(fd, unique, error=errno.ENOSYS)


def serve(fd: int, answering: Optional[threading.Event]) -> None:
    """Answer the mount's requests; while ``answering`` is clear, hold each
    request read unanswered until it is set again."""
    while True:
        try:
            request = os.read(fd, READ_BUFFER)
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.ENOENT, errno.EAGAIN):
                continue
            return  # ENODEV: unmounted
        if answering is not None:
            answering.wait()
        answer(fd, request)


class Namespace:
    """The mounts and commands of one spec; run by main() as the namespace's init."""

    def __init__(self, spec: Dict):
        self.spec = spec
        self.root = Path(spec["dir"])
        self.answering = threading.Event()
        self.answering.set()
        self.fds: List[int] = []  # held open until exit: closing one aborts its mount
        self.children: List[subprocess.Popen] = []
        self.stop = threading.Event()

    def mount_all(self) -> Dict[str, List[str]]:
        points: Dict[str, List[str]] = {"dead": [], "flaky": [], "ok": [], "tmpfs": []}
        for kind in points:
            for i in range(int(self.spec.get(kind, 0))):
                target = self.root / f"{kind}-{i}"
                target.mkdir(parents=True, exist_ok=True)
                if kind == "tmpfs":
                    mount_tmpfs(str(target))
                else:
                    fd = mount_fuse(f"{kind}fuse{i}", str(target))
                    self.fds.append(fd)
                    if kind != "dead":
                        gate = self.answering if kind == "flaky" else None
                        threading.Thread(target=serve, args=(fd, gate), daemon=True).start()
                points[kind].append(str(target))
        return points

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGUSR1, lambda *_: self.answering.clear())
        signal.signal(signal.SIGUSR2, lambda *_: self.answering.set())
        points = self.mount_all()
        ready = Path(self.spec["ready_file"])
        ready.with_suffix(".tmp").write_text(json.dumps(points))
        ready.with_suffix(".tmp").rename(ready)
        for argv, log in zip(self.spec["commands"], self.spec["logs"]):
            with open(log, "wb") as out:
                self.children.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + float(self.spec.get("lifetime", 600))
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.children and self.children[0].poll() is not None:
                break
            self.stop.wait(0.2)
        return self.shutdown()

    def shutdown(self) -> int:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + float(self.spec.get("stop_timeout", 15))
        for child in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if not self.children:
            return 0
        code = self.children[0].returncode
        return code if code >= 0 else 128 - code


def namespace_argv(spec_file: str, python: str = sys.executable) -> List[str]:
    """The command that runs this script as init of a private mount and pid namespace."""
    return [
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child",
        python, os.path.abspath(__file__), spec_file,
    ]  # fmt: skip


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} SPEC.json", file=sys.stderr)
        return 2
    if os.getpid() != 1:
        print("hungmounts: refusing to mount outside a new pid namespace (run it under unshare, see --help)", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    return Namespace(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
