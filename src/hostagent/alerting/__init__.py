"""Alerting: thresholds from config/alerting.yaml and the Prometheus rules made from them."""
