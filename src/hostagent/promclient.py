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
lives in the heavy module, is rendered by ``generate_text`` below.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import types
from typing import Any, Dict, Iterable, List

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
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics  # noqa: E402
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


def _sample_line(sample: Any) -> str:
    labels = ""
    if sample.labels:
        labels = "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(sample.labels.items())) + "}"
    stamp = "" if sample.timestamp is None else f" {int(float(sample.timestamp) * 1000):d}"
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
