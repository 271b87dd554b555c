"""hostagent: a Prometheus-native system resource monitor for Linux servers."""

__version__ = "0.2.0"
