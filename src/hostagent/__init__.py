"""hostagent: a Prometheus-native system resource monitor for Linux servers."""

__version__ = "0.1.0"
