"""The metrics endpoint reports what the database holds."""

from __future__ import annotations

import urllib.request

from prometheus_client import generate_latest
from sqlalchemy.engine import Engine

from mailbot.config import Prefix
from mailbot.issuance.pool import sync_prefixes
from mailbot.service.metrics import Metrics
from mailbot.storage.db import transaction
from mailbot.storage.models import InboundMessage
from tests.conftest import FakeClock


def test_metrics_count_messages_by_outcome_and_the_free_pool(
    engine: Engine, clock: FakeClock
) -> None:
    with transaction(engine) as session:
        sync_prefixes(session, [Prefix("4601234", 1000)], now=clock())
        for n, (status, kind) in enumerate(
            [("processed", "application"), ("processed", "application"), ("failed", "")]
        ):
            session.add(
                InboundMessage(
                    key=f"k{n}",
                    sha256=f"{n}" * 64,
                    archive_path="x",
                    size=1,
                    received_at=clock(),
                    status=status,
                    kind=kind,
                )
            )
    metrics = Metrics(engine)
    metrics.processing_seconds.labels(kind="application").observe(0.042)
    text = generate_latest(metrics.registry).decode()
    assert 'mailbot_inbound_messages{kind="application",status="processed"} 2.0' in text
    assert 'mailbot_inbound_messages{kind="unclassified",status="failed"} 1.0' in text
    assert 'mailbot_pool_free_codes{prefix="4601234"} 1000.0' in text
    assert 'mailbot_processing_seconds_count{kind="application"} 1.0' in text


def test_metrics_are_served_over_http_on_a_local_port(engine: Engine) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics(engine)
    metrics.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert b"# TYPE mailbot_pool_free_codes gauge" in reply.read()
