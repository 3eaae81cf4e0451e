"""Prometheus metrics on a local port: what the database says, plus in-process timings.

Counts (messages by outcome, outbox depth and failures, pool remaining) are read from the
database at scrape time by a custom collector, so every daemon reports the same truth and
nothing is lost on restart. Only what exists in one process — processing latency and the
IMAP connection state — lives in ordinary metric objects.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot.storage.models import BarcodePool, InboundMessage, OutboxMessage


class DatabaseCollector(Collector):
    """Gauges computed from the tables on each scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        messages = GaugeMetricFamily(
            "mailbot_inbound_messages",
            "Inbound messages by status and kind",
            labels=["status", "kind"],
        )
        outbox = GaugeMetricFamily(
            "mailbot_outbox_messages", "Outgoing mail by status", labels=["status"]
        )
        pool = GaugeMetricFamily(
            "mailbot_pool_free_codes", "Free item references per active prefix", labels=["prefix"]
        )
        with Session(self._engine) as session:
            for status, kind, n in session.exec(
                select(InboundMessage.status, InboundMessage.kind, func.count()).group_by(
                    col(InboundMessage.status), col(InboundMessage.kind)
                )
            ):
                messages.add_metric([status, kind or "unclassified"], n)
            for status, n in session.exec(
                select(OutboxMessage.status, func.count()).group_by(col(OutboxMessage.status))
            ):
                outbox.add_metric([status], n)
            for p in session.exec(select(BarcodePool).where(col(BarcodePool.active))):
                pool.add_metric([p.prefix], max(0, p.capacity - p.next_ref))
        yield messages
        yield outbox
        yield pool


class Metrics:
    """The metric objects of one daemon process, on their own registry."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(engine))
        self.processing_seconds = Histogram(
            "mailbot_processing_seconds",
            "Time to process one inbound message",
            labelnames=["kind"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.imap_connected = Gauge(
            "mailbot_imap_connected", "1 while the IMAP connection is up", registry=self.registry
        )
        self.last_pass = Gauge(
            "mailbot_last_pass_timestamp_seconds",
            "When the daemon last finished a pass",
            registry=self.registry,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on host:port in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
