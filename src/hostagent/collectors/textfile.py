"""Metrics written by other programs as ``*.prom`` files in a directory (the textfile format).

Cron jobs and scripts (backups, package updates, RAID controller tools)
write the Prometheus text format into ``collectors.textfile.directory``;
every run serves the files there, with their own types and HELP, plus::

    host_textfile_mtime_seconds{file="backup.prom"} 1.7960520e+09
    host_textfile_scrape_error 0.0

Writers should write a temporary file in the same directory and rename it
over the ``.prom`` name, which replaces it in one step. For writers that do
not, a file is served only when a read is whole: its size and modification
time are the same before and after the read, its last line ends with a
newline, and all of it parses; otherwise it is read again after a moment,
and refused for this run if it is still changing. An empty file is looked
at again too (a writer may have just truncated it) and served empty only if
it stays empty. A writer pausing exactly at a line boundary leaves a file
that is complete as far as any reader can tell: only the rename makes that
case safe.

A file is refused, named in the log once per change of reason and counted
in ``host_textfile_scrape_error``, without touching the other files, when it
does not parse, is larger than ``max_file_bytes``, carries timestamps,
defines a name the agent itself serves (a ``host_`` family of a collector,
any ``hostagent_`` name, prometheus-client's ``process_``/``python_info``),
clashes with another file's family of the same name but another type or
repeats one of its series, or would take the run past ``max_samples``.
Files are read in name order, so the earlier file wins a clash. Hidden files
(``.name.prom``) are skipped, as writers use them as temporary names. A
counter whose name lacks ``_total`` is served with it, as OpenMetrics
requires; families without HELP get "Metric read from <file>". Writers and
operators: see docs/textfile.md.

A file whose identity, size, modification and change times are those of the
last run is not read again, provided that read came more than a second after
the file's last modification (so no write can have shared its timestamp):
files rewritten once a minute or an hour cost a stat() per run.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, Union

from ..promclient import CLIENT_METRICS, Metric

from .base import REGISTRY, BaseCollector, MetricSpec, NotAvailable, Option, OptionError, register
from ..wording import counted

if TYPE_CHECKING:
    from prometheus_client.samples import Sample

log = logging.getLogger("hostagent.collectors.textfile")

MTIME = MetricSpec("host_textfile_mtime_seconds", "gauge", "Modification time of each textfile served, in seconds since the Unix epoch.", ("file",), "seconds")
SCRAPE_ERROR = MetricSpec("host_textfile_scrape_error", "gauge", "1 if any *.prom file was refused in the last run (the agent's log names it and says why), else 0.", ())

MiB = 1024 * 1024
NO_DIRECTORY = "no directory configured (collectors.textfile.directory)"
# A read that finds the file changing (or without its final newline) is tried
# again this many times in all, this far apart, before the file is refused.
READ_ATTEMPTS = 3
RETRY_PAUSE = 0.05
# A read's outcome is reused while the file is unchanged, if the read came
# this long after the file's last modification: longer than the coarsest
# timestamp granularity, so a later write cannot carry the same mtime.
SETTLED = 1.0
# Types of the text format (the parser calls untyped "unknown").
TEXT_TYPES = frozenset({"counter", "gauge", "summary", "histogram", "unknown"})
RESERVED_PREFIX = "hostagent_"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

SeriesKey = Tuple[str, Tuple[Tuple[str, str], ...]]  # sample name, sorted labels


def _check_directory(value: Any) -> Any:
    """Unset, or a directory that exists: a path that is not one is a typo
    found with the configuration (--check-config and the start agree),
    not a collector failing once the agent runs."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\0" in value:
        raise OptionError(f"must be a directory path, got {value!r}")
    if not os.path.isdir(value):
        raise OptionError(f"{'not a directory' if os.path.exists(value) else 'no such directory'}: {value!r}")
    return value


class Refused(Exception):
    """A file is not served this run; the message says why."""


@dataclass(frozen=True)
class Family:
    """One metric family of a file, validated. Its samples are the parser's
    own (prometheus-client ``Sample`` named tuples), never changed once made
    and shared by every family served from them, so a file's series are held
    once, not copied into each snapshot."""

    name: str
    type: str  # one of TEXT_TYPES
    help: str
    samples: Tuple["Sample", ...]
    sample_names: FrozenSet[str]  # e.g. x_bucket, x_sum, x_count


@dataclass(frozen=True)
class TextFile:
    """A file served in this run."""

    name: str  # base name, e.g. backup.prom
    mtime: float
    families: Tuple[Family, ...]


@dataclass(frozen=True)
class TextfileSample:
    """The files served, and those refused with the reason."""

    files: Tuple[TextFile, ...]
    refused: Tuple[Tuple[str, str], ...]


def series_key(sample: "Sample") -> SeriesKey:
    return sample.name, tuple(sorted(sample.labels.items()))


# --------------------------------------------------------------------------
# Reading


def read_whole(path: str, max_bytes: int, attempts: int = READ_ATTEMPTS, pause: float = RETRY_PAUSE) -> Tuple[str, os.stat_result]:
    """(text, stat) of a file read while nothing changed it.

    A read counts when the file's size and modification time are the same
    before and after it, it got exactly that many bytes, and the text ends
    with a newline. Otherwise it is tried again after ``pause``, up to
    ``attempts`` reads in all, then refused. An empty file is also looked at
    again (a writer may have just truncated it), and served empty if it
    stays so."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise Refused("not a regular file")
    problem = ""  # what the last look that found content found wrong
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise Refused("not a regular file")
            if before.st_size > max_bytes:
                raise Refused(f"{before.st_size} bytes, more than max_file_bytes ({max_bytes})")
            chunks = []
            left = max_bytes + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise Refused(f"grew past max_file_bytes ({max_bytes}) while being read")
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
            problem = "changed while being read"
        elif data and not data.endswith(b"\n"):
            problem = "last line has no newline at its end (incomplete)"
        elif data:
            try:
                return data.decode("utf-8"), after
            except UnicodeDecodeError as exc:
                raise Refused(f"not UTF-8 text (byte {exc.start})") from None
        elif not problem and attempt + 1 == attempts:
            return "", after  # empty at every look
        # Otherwise empty: a writer may just have truncated it; look again.
    raise Refused(f"{problem} on {attempts} reads {pause:g}s apart; write a temporary file and rename it into place")


# --------------------------------------------------------------------------
# Parsing


def _parser() -> Callable[[str], Iterable[Metric]]:
    # Loaded on first use, after ..promclient has set up the lightweight
    # package, so a textfile collector left off costs nothing.
    return importlib.import_module("prometheus_client.parser").text_string_to_metric_families


def _bad_line(text: str, parse: Callable[[str], Iterable[Metric]]) -> str:
    """Where a text that failed to parse goes wrong: the first line that
    fails on its own, for the log."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            list(parse(line + "\n"))
        except Exception as exc:  # the parser raises several kinds
            shown = line if len(line) <= 80 else line[:77] + "..."
            return f"line {number}: {str(exc) or 'not valid'}: {shown!r}"
    return "families that do not fit together"


def _check_sample(sample: "Sample") -> None:
    if not _METRIC_NAME.fullmatch(sample.name):
        raise Refused(f"invalid metric name {sample.name!r}")
    for label in sample.labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise Refused(f"{sample.name}: invalid label name {label!r}")
    if sample.timestamp is not None:
        raise Refused(f"{sample.name}: has a timestamp; the agent serves values as of its own read")
    if sample.exemplar is not None or getattr(sample, "native_histogram", None) is not None:
        raise Refused(f"{sample.name}: exemplars and native histograms are not part of the text format")


def parse_textfile(text: str, file: str) -> Tuple[Family, ...]:
    """The validated families of a file's text, in file order.

    Two stretches of one family are joined; a family with no samples is
    left out. Raises Refused saying what is wrong."""
    parse = _parser()
    try:
        metrics = list(parse(text))
    except Exception:  # the parser raises ValueError, IndexError, ...
        raise Refused(f"not valid text format: {_bad_line(text, parse)}") from None
    merged: Dict[str, Tuple[str, str, List["Sample"]]] = {}
    owner: Dict[str, str] = {}  # sample name -> its family
    series: Set[SeriesKey] = set()
    for metric in metrics:
        if not _METRIC_NAME.fullmatch(metric.name):
            raise Refused(f"invalid metric name {metric.name!r}")
        if metric.type not in TEXT_TYPES:
            raise Refused(f"family {metric.name}: type {metric.type!r} is not one of the text format's")
        kind, help_, samples = merged.setdefault(metric.name, (metric.type, metric.documentation, []))
        if kind != metric.type:
            raise Refused(f"family {metric.name} is declared twice, as {kind} and {metric.type}")
        for sample in metric.samples:
            _check_sample(sample)
            if owner.setdefault(sample.name, metric.name) != metric.name:
                raise Refused(f"sample name {sample.name} is used by two families, {owner[sample.name]} and {metric.name}")
            key = series_key(sample)
            if key in series:
                raise Refused(f"series {sample.name}{sample.labels} appears twice")
            series.add(key)
            samples.append(sample)
    return tuple(
        Family(name, kind, help_ or f"Metric read from {file}", tuple(samples), frozenset(s.name for s in samples))
        for name, (kind, help_, samples) in merged.items()
        if samples
    )


# --------------------------------------------------------------------------
# Rules across files


def reserved_names(registry: Optional[Mapping[str, type]] = None) -> FrozenSet[str]:
    """Names the agent serves itself: every collector's declared family (a
    counter also under its name without ``_total``, as the exposition's
    family name) and prometheus-client's process and platform families."""
    names: Set[str] = set()
    for cls in (REGISTRY if registry is None else registry).values():
        for spec in cls.metrics:
            names.add(spec.name)
            if spec.type == "counter":
                names.add(spec.name[: -len("_total")])
    for name, kind, *_ in CLIENT_METRICS:
        names.add(name)
        if kind == "counter":
            names.add(name[: -len("_total")])
    return frozenset(names)


class Served:
    """What the files accepted so far in a run serve: their families by
    name, which family owns each sample name, and how many samples.

    Checking a file costs a look per family; series are compared only for a
    family an earlier file also has."""

    def __init__(self, reserved: FrozenSet[str], max_samples: int):
        self.reserved = reserved
        self.max_samples = max_samples
        self.families: Dict[str, List[Family]] = {}
        self.owner: Dict[str, str] = {}
        self.count = 0

    def add(self, families: Tuple[Family, ...]) -> None:
        """Take a file's families, or raise Refused if they cannot be served
        beside the files taken so far (nothing is taken then)."""
        for fam in families:
            for name in {fam.name} | fam.sample_names:
                if name in self.reserved or name.startswith(RESERVED_PREFIX):
                    raise Refused(f"defines {name}, which the agent serves itself")
            earlier = self.families.get(fam.name)
            if earlier and earlier[0].type != fam.type:
                raise Refused(f"family {fam.name} is a {fam.type} here but a {earlier[0].type} in an earlier file")
            for name in fam.sample_names:
                if self.owner.get(name, fam.name) != fam.name:
                    raise Refused(f"sample name {name} of family {fam.name} belongs to family {self.owner[name]} of an earlier file")
            if earlier:
                seen = {series_key(s) for other in earlier for s in other.samples}
                for sample in fam.samples:
                    if series_key(sample) in seen:
                        raise Refused(f"series {sample.name}{sample.labels} is already served from an earlier file")
        count = sum(len(fam.samples) for fam in families)
        if self.count + count > self.max_samples:
            raise Refused(f"its {counted(count, 'sample')} would take this run past max_samples ({self.max_samples}, {self.count} already served)")
        for fam in families:
            self.families.setdefault(fam.name, []).append(fam)
            self.owner.update(dict.fromkeys(fam.sample_names, fam.name))
        self.count += count


def merge(files: Iterable[TextFile]) -> List[Family]:
    """Families of all files, one per name in order of first appearance,
    with the HELP of the first file that has it."""
    out: Dict[str, Family] = {}
    for file in files:
        for fam in file.families:
            first = out.get(fam.name)
            out[fam.name] = fam if first is None else Family(fam.name, fam.type, first.help, first.samples + fam.samples, first.sample_names | fam.sample_names)
    return list(out.values())


# --------------------------------------------------------------------------
# The collector

# What identifies a file's content for reuse: device, inode, size, mtime, ctime.
Identity = Tuple[int, int, int, int, int]


def identity(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@register
class TextfileCollector(BaseCollector):
    """Serves the *.prom files of a directory, with their modification times."""

    name = "textfile"
    help = "Metrics from *.prom files in a directory (off until collectors.textfile.directory is set): the files' own series, plus 1 per file and 1 more"
    options = {
        "directory": Option(None, "Directory whose *.prom files are served; it must exist. Unset, the collector is off (shown as disabled: no directory configured).", _check_directory),
        "max_file_bytes": Option.integer(MiB, "A file larger than this many bytes is refused.", 1, 64 * MiB),
        "max_samples": Option.integer(10000, "Most samples served from all files together in one run; a file that would pass it is refused (files are taken in name order).", 1, 10_000_000),
    }
    metrics = (MTIME, SCRAPE_ERROR)

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Any = None) -> None:
        super().__init__(options, paths)
        self._reserved: Optional[FrozenSet[str]] = None
        self._reported: Dict[str, str] = {}  # file -> reason last logged
        # file -> (identity, its families or why it was refused), for files
        # unchanged since a read that came after they settled
        self._known: Dict[str, Tuple[Identity, Union[TextFile, str]]] = {}

    def _read(self, path: str, file: str) -> TextFile:
        """The file's families, or Refused; what the last read gave while
        the file has not changed since."""
        known = self._known.get(file)
        if known is not None and known[0] == identity(os.stat(path)):
            outcome = known[1]
        else:
            self._known.pop(file, None)
            try:
                text, st = read_whole(path, self.config["max_file_bytes"])
                outcome = TextFile(file, st.st_mtime, parse_textfile(text, file))
            except Refused as exc:
                st, outcome = os.stat(path), str(exc)
            if time.time() - st.st_mtime > SETTLED:
                self._known[file] = (identity(st), outcome)
        if isinstance(outcome, str):
            raise Refused(outcome)
        return outcome

    @classmethod
    def nothing_to_do(cls, options: Mapping[str, Any]) -> Optional[str]:
        return None if options.get("directory") else NO_DIRECTORY

    def sample(self) -> TextfileSample:
        directory = self.config["directory"]
        if not directory:  # the agent leaves the collector off then; built by hand, it says why
            raise NotAvailable(NO_DIRECTORY)
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".prom") and not n.startswith("."))
        except FileNotFoundError:
            raise FileNotFoundError(f"textfile directory {directory} does not exist") from None
        except NotADirectoryError:
            raise NotADirectoryError(f"textfile directory {directory} is not a directory") from None
        if self._reserved is None:
            self._reserved = reserved_names()
        served = Served(self._reserved, self.config["max_samples"])
        files, refused = [], []
        for file in names:
            try:
                result = self._read(os.path.join(directory, file), file)
                served.add(result.families)
            except FileNotFoundError:
                continue  # removed since the listing
            except (Refused, OSError) as exc:
                refused.append((file, str(exc) if isinstance(exc, Refused) else f"cannot be read: {exc.strerror or exc}"))
                continue
            files.append(result)
        for gone in self._known.keys() - set(names):
            del self._known[gone]
        self._report(directory, names, refused)
        return TextfileSample(tuple(files), tuple(refused))

    def _report(self, directory: str, names: List[str], refused: List[Tuple[str, str]]) -> None:
        """Log each refusal once per change of its reason, and each recovery."""
        now = dict(refused)
        for file, reason in refused:
            if self._reported.get(file) != reason:
                log.warning("textfile %s refused: %s", os.path.join(directory, file), reason)
        for file in self._reported.keys() - now.keys():
            if file in names:
                log.info("textfile %s is served again", os.path.join(directory, file))
        self._reported = now

    def families(self, sample: TextfileSample) -> Iterator[Metric]:
        for fam in merge(sample.files):
            metric = Metric(fam.name, fam.help, fam.type)
            metric.samples = list(fam.samples)
            yield metric
        mtimes = MTIME.family()
        for file in sample.files:
            mtimes.add_metric([file.name], file.mtime)
        if mtimes.samples:
            yield mtimes
        yield SCRAPE_ERROR.single(1.0 if sample.refused else 0.0)
