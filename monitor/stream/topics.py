"""The topics a deployment reads and writes, and the Faust app id that names its internal ones."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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


def changelog(config: WorkerConfig, spec: Spec) -> str:
    """The changelog topic of the merger's table (Faust names it after the app and the table)."""
    return f"{app_id(config, spec)}-merger-changelog"


def topics_to_create(config: WorkerConfig, spec: Spec) -> dict[str, int]:
    """Every topic the worker reads or writes, with its partition count: create them before the
    worker starts, since a broker that auto-creates topics may pick another count."""
    topics = config.topics
    names = [topics.requests, topics.predictions, topics.feedback, topics.sketches, topics.alerts, topics.dlq,
             changelog(config, spec)]
    return dict.fromkeys(names, config.kafka.partitions)


async def ensure_topics(client_options: dict[str, Any], topics: dict[str, int]) -> None:
    """Creates the topics that do not exist yet, with the given partition counts."""
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


def ensure_topics_sync(client_options: dict[str, Any], topics: dict[str, int]) -> None:
    asyncio.run(ensure_topics(client_options, topics))


async def delete_topics(client_options: dict[str, Any], names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def read_range(client_options: dict[str, Any], tp: TopicPartition, first: int,
                     end: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of one partition at offsets [first, end), read without a consumer group. The
    record at `end` must exist (it was read): the loop ends once it is reached."""
    # Earliest: where retention deleted the start of the range, what is left of it.
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_options)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, first)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records += [record for record in batch.get(tp, []) if record.offset < end]
        return records
    finally:
        await consumer.stop()
