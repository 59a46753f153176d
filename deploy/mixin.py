"""What the monitoring generators share, defined once (as a monitoring mixin's config.libsonnet does).

Read by deploy/prometheus/rules.py (the rules and alerts), grafana/dashboards.py (the dashboards) and
deploy/kubernetes/generate.py (the manifests). The hand-written deploy/prometheus/prometheus.yml and
deploy/kubernetes/service.yaml repeat JOB, and tests/test_deploy.py checks that they agree with it;
deploy/prometheus/tests/synthdrift.test.yml repeats JOB and RUNBOOK_BASE, and `promtool test rules` fails
where they part.
"""

from __future__ import annotations

# The Prometheus job of the workers. In Kubernetes the ServiceMonitor takes it from the Service's
# app.kubernetes.io/name label, so that label is this name too.
JOB = "synthdrift"
JOB_SELECTOR = f'job="{JOB}"'

# Where the runbook lives; each alert links to its section. Point it at your copy with
# `python deploy/prometheus/rules.py --runbook-base URL`.
RUNBOOK_BASE = "https://github.com/synthdrift/synthdrift/blob/main/deploy/RUNBOOK.md"


def runbook_url(alert: str, base: str = RUNBOOK_BASE) -> str:
    """The link to an alert's section: GitHub anchors a `## Name` heading as `#name`."""
    return f"{base}#{alert.lower()}"
