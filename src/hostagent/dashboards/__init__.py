"""Grafana dashboards as code: built here, committed as JSON under grafana/dashboards/.

``grafana`` holds the JSON building blocks (panels, variables, layout),
``boards`` the dashboards themselves and ``generate`` the command that writes
or checks the committed files. Threshold colours come from
config/alerting.yaml, so a panel turns orange or red where the alert fires.
"""
