"""The metrics endpoint reports, over HTTP, the work a daemon pass really did."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mailbot.cli.demo import drop_sample
from mailbot.runtime import Runtime
from mailbot.service.daemon import open_intake, open_transport, prepare, run_pass
from mailbot.service.metrics import Metrics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics as {(name, labels): value}, parsed as Prometheus reads it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_metrics_over_http_count_a_message_processed_and_its_reply_sent(rt: Runtime) -> None:
    prepare(rt)  # the pool rows of config.toml
    port = _free_port()
    metrics = Metrics(rt.engine)
    metrics.serve(port)
    before = scrape(port)
    free_before = before[sample("mailbot_pool_free_codes", prefix="4601234")]
    assert sample("mailbot_inbound_messages", kind="application", status="processed") not in before
    assert sample("mailbot_processing_seconds_count", kind="any") not in before

    drop_sample(rt.settings.maildir.inbox, to=rt.settings.service.email)
    intake, transport = open_intake(rt.settings), open_transport(rt.settings)
    try:
        report = run_pass(rt, intake, transport, metrics=metrics)
    finally:
        intake.close()
        transport.close()
    assert (report.received, report.processed, report.sent) == (1, 1, 1)  # the invoice

    after = scrape(port)
    assert after[sample("mailbot_inbound_messages", kind="application", status="processed")] == 1
    assert after[sample("mailbot_outbox_messages", status="sent")] == 1
    assert after[sample("mailbot_processing_seconds_count", kind="any")] == 1
    assert after[sample("mailbot_processing_seconds_sum", kind="any")] > 0
    # an invoice reserves no codes: those are taken at issuance, after payment
    assert after[sample("mailbot_pool_free_codes", prefix="4601234")] == free_before
