"""The topics a deployment reads and writes, and the Faust app id that names its internal ones."""

from __future__ import annotations

from monitor.config import Topics, WorkerConfig
from monitor.core.spec import Spec


def app_id(config: WorkerConfig, spec: Spec) -> str:
    """The Faust app id; the traffic consumer group is `<app id>.traffic`."""
    return config.kafka.group_id or f"synthdrift-{spec.model}"


def sources(topics: Topics, spec: Spec) -> dict[str, str]:
    """Topic -> stream, for the streams the spec has channels for."""
    found = {topics.requests: "requests"}
    if spec.prediction_label or spec.prediction_score:
        found[topics.predictions] = "predictions"
    if spec.label and spec.prediction_label:
        found[topics.feedback] = "feedback"
    return found


def topics_to_create(config: WorkerConfig, spec: Spec) -> dict[str, int]:
    """Every topic the worker reads or writes, with its partition count: create them before the
    worker starts, since a broker that auto-creates topics may pick another count."""
    topics = config.topics
    names = [topics.requests, topics.predictions, topics.feedback, topics.sketches, topics.alerts, topics.dlq,
             f"{app_id(config, spec)}-merger-changelog"]
    return dict.fromkeys(names, config.kafka.partitions)
