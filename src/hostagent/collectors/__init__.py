"""Collectors: every module in this package registers one collector.

Adding a collector means adding one module here (plus its tests and docs);
``load_all()`` imports every module so ``REGISTRY`` is complete.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Type

from .base import REGISTRY, BaseCollector, MetricSpec, NameFilter, NotAvailable, Option, Paths, fraction, read_text, register

__all__ = ["BaseCollector", "MetricSpec", "NameFilter", "NotAvailable", "Option", "Paths", "fraction", "read_text", "register", "REGISTRY", "load_all"]


def load_all() -> Dict[str, Type[BaseCollector]]:
    """Import every collector module and return the registry, ordered by name."""
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(REGISTRY.items()))
