"""prometheus-client's data model and formatters, without its HTTP side.

Importing the ``prometheus_client`` package runs its ``__init__``, which also
loads its HTTP server, WSGI/ASGI apps and push-gateway client, and with them
``http.server``, ``urllib.request``, ``email`` and ``ssl``: about 11 MiB of
resident memory in an agent that serves /metrics itself and targets 30 MiB in
all. When the package has not been imported yet, this module loads only the
submodules the agent uses (metric families, registry, process and platform
collectors, the OpenMetrics formatter) straight from the package directory,
under a placeholder package that loads the real ``__init__`` the moment
anything asks it for a name it does not have. The classic text format, which
lives in the heavy module, is rendered by ``generate_text`` below, and so is
OpenMetrics for the plain families the agent makes (prometheus-client 0.26's
formatter spends two thirds of its time checking names character by
character).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import threading
import types
from typing import Any, Dict, Iterable, List, Tuple

# Families prometheus-client adds to every exposition (not declared by us).
CLIENT_METRICS: Tuple[Tuple[str, str, Tuple[str, ...], str, str], ...] = (
    ("process_cpu_seconds_total", "counter", (), "seconds", "CPU time the agent process has used."),
    ("process_resident_memory_bytes", "gauge", (), "bytes", "The agent's resident memory."),
    ("process_virtual_memory_bytes", "gauge", (), "bytes", "The agent's virtual memory."),
    ("process_start_time_seconds", "gauge", (), "seconds", "Unix time the agent process started."),
    ("process_open_fds", "gauge", (), "", "File descriptors the agent has open."),
    ("process_max_fds", "gauge", (), "", "The agent's file descriptor limit."),
    ("python_info", "gauge", ("implementation", "major", "minor", "patchlevel", "version"), "", "Python implementation and version; value is always 1."),
)

PACKAGE = "prometheus_client"
# The modules loaded below, as files of the package.
_PARTS = ("metrics_core.py", "openmetrics/exposition.py", "platform_collector.py", "process_collector.py", "registry.py", "utils.py")


_LOCK = threading.RLock()


class _Placeholder(types.ModuleType):
    """Stands for the package until a caller needs its top-level names."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        root = self.__path__[0]
        if os.path.isfile(os.path.join(root, name + ".py")) or os.path.isdir(os.path.join(root, name)):
            # `from . import values` inside the package asks the package for
            # its submodule: hand over the submodule, not the whole package.
            try:
                return importlib.import_module(f"{PACKAGE}.{name}")
            except ImportError:
                raise AttributeError(name) from None  # e.g. an optional integration
        with _LOCK:
            if type(self) is _Placeholder:
                # Become the real package in place: run its __init__ in this
                # very module object, so there is one package, and the
                # submodules loaded so far stay attached to it.
                self.__class__ = types.ModuleType
                self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]
        return getattr(self, name)


def _install_placeholder() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{PACKAGE} is not installed")
    root = list(spec.submodule_search_locations)[0]
    if not all(os.path.isfile(os.path.join(root, *part.split("/"))) for part in _PARTS):
        # Not installed as plain files (a zip, say): import it the ordinary way.
        return
    placeholder = _Placeholder(PACKAGE)
    placeholder.__path__ = list(spec.submodule_search_locations)
    placeholder.__spec__ = spec
    placeholder.__file__ = spec.origin
    placeholder.__package__ = PACKAGE
    placeholder.__loader__ = spec.loader
    sys.modules[PACKAGE] = placeholder


_install_placeholder()

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE  # noqa: E402
from prometheus_client.openmetrics.exposition import generate_latest as _library_openmetrics  # noqa: E402
from prometheus_client.platform_collector import PlatformCollector  # noqa: E402
from prometheus_client.process_collector import ProcessCollector  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402
from prometheus_client.utils import floatToGoString  # noqa: E402

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = [
    "CollectorRegistry",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "Metric",
    "OPENMETRICS_CONTENT_TYPE",
    "PlatformCollector",
    "ProcessCollector",
    "TEXT_CONTENT_TYPE",
    "generate_openmetrics",
    "generate_text",
]

# Text-format type names for OpenMetrics family types.
_TEXT_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
# Samples the text format has no place for inside their family: they go into
# a gauge family of their own after it.
_SEPARATE_SUFFIXES = ("_created", "_gsum", "_gcount")


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _sample_line(sample: Any, openmetrics: bool = False) -> str:
    labels = ""
    if sample.labels:
        labels = "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(sample.labels.items())) + "}"
    if sample.timestamp is None:
        stamp = ""
    else:  # seconds in OpenMetrics, milliseconds in the text format
        stamp = f" {sample.timestamp}" if openmetrics else f" {int(float(sample.timestamp) * 1000):d}"
    return f"{sample.name}{labels} {floatToGoString(sample.value)}{stamp}\n"


def generate_text(source: Any) -> bytes:
    """The Prometheus text format (0.0.4) of everything ``source.collect()`` yields."""
    out: List[str] = []
    for metric in source.collect():
        name, kind = metric.name, metric.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name += "_info"
        out.append(f"# HELP {name} {_help(metric.documentation)}\n")
        out.append(f"# TYPE {name} {_TEXT_TYPES.get(kind, kind)}\n")
        separate: Dict[str, List[str]] = {}
        for sample in metric.samples:
            suffix = next((s for s in _SEPARATE_SUFFIXES if sample.name == metric.name + s), None)
            if suffix is None:
                out.append(_sample_line(sample))
            else:
                separate.setdefault(suffix, []).append(_sample_line(sample))
        for suffix, lines in sorted(separate.items()):
            out.append(f"# HELP {metric.name}{suffix} {_help(metric.documentation)}\n")
            out.append(f"# TYPE {metric.name}{suffix} gauge\n")
            out.extend(lines)
    return "".join(out).encode("utf-8")


def families_of(items: Iterable[Metric]) -> Any:
    """A fixed list of families in the shape the formatters take."""
    return types.SimpleNamespace(collect=lambda: items)


# Families the OpenMetrics writer below handles itself: one sample line per
# sample, no exemplars or native histograms. Others go to the library's.
_OM_PLAIN = frozenset(("gauge", "counter", "unknown", "info"))
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_plain_names: set = set()  # metric and label names seen to need no escaping


def _is_plain(metric: Any) -> bool:
    if metric.type not in _OM_PLAIN:
        return False
    names = {metric.name}
    for sample in metric.samples:
        if sample.exemplar is not None or sample.native_histogram is not None:
            return False
        names.add(sample.name)
        names.update(sample.labels)
    unknown = names - _plain_names
    if unknown:
        if not all(_LEGACY_NAME.match(name) for name in unknown):
            return False
        _plain_names.update(unknown)
    return True


def generate_openmetrics(source: Any, eof: bool = True) -> bytes:
    """OpenMetrics 1.0 of everything ``source.collect()`` yields, ending in
    ``# EOF`` unless ``eof`` is false (a part to be joined with others);
    byte for byte what prometheus-client writes."""
    out: List[str] = []
    for metric in source.collect():
        if not _is_plain(metric):
            library = _library_openmetrics(families_of([metric])).decode("utf-8")
            out.append(library[: -len("# EOF\n")])
            continue
        name = metric.name
        # HELP escapes as a label value does in OpenMetrics (quotes too).
        out.append(f"# HELP {name} {_label_value(metric.documentation)}\n# TYPE {name} {metric.type}\n")
        if metric.unit:
            out.append(f"# UNIT {name} {metric.unit}\n")
        out.extend(_sample_line(sample, openmetrics=True) for sample in metric.samples)
    if eof:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")
