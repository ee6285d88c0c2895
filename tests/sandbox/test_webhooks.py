"""Webhook delivery: sent in the background, retried, faulted on purpose, logged without secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.faults import FaultInjector, WebhookFaults
from sandbox.webhooks import WebhookSender
from tests.sandbox.conftest import WebhookReceiver

BODY = b'{"event":"PAYMENT_RECEIVED","email":"maria@example.com"}'
HEADERS = {"Content-Type": "application/json", "asaas-access-token": "s3cr3t-token"}


@pytest.fixture
def faults() -> FaultInjector:
    return FaultInjector(seed=4)


@pytest.fixture
def sender(faults: FaultInjector) -> Iterator[WebhookSender]:
    sender = WebhookSender(faults, retry_delays=(0.05, 0.05))
    yield sender
    sender.close()


def test_a_delivery_reaches_the_receiver_with_its_exact_bytes_and_headers(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    sender.deliver("asaas", receiver.url, BODY, HEADERS)
    (received,) = receiver.wait_for(1)
    assert received.body == BODY
    assert received.headers["asaas-access-token"] == "s3cr3t-token"
    assert sender.wait_idle()
    assert sender.log()[0]["outcome"] == "delivered"


def test_deliveries_arrive_in_the_order_they_were_made(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    for index in range(20):
        sender.deliver("asaas", receiver.url, f'{{"n":{index}}}'.encode(), HEADERS)
    received = receiver.wait_for(20)
    assert [r.body for r in received] == [f'{{"n":{i}}}'.encode() for i in range(20)]


def _deliver_one(sender: WebhookSender, receiver: WebhookReceiver) -> dict[str, Any]:
    """One delivery to `receiver`, followed through its three attempts; its log record."""
    sender.deliver("asaas", receiver.url, BODY, HEADERS)
    receiver.wait_for(3)
    assert sender.wait_idle()
    (record,) = sender.log()
    return record


def test_a_failed_delivery_is_retried_until_the_receiver_accepts_it(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    receiver.fail_first = 2
    record = _deliver_one(sender, receiver)
    assert (record["outcome"], record["attempts"], record["status_code"]) == ("delivered", 3, 200)


def test_a_delivery_that_keeps_failing_is_logged_as_failed(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    receiver.status = 500
    record = _deliver_one(sender, receiver)
    assert (record["outcome"], record["attempts"], record["status_code"]) == ("failed", 3, 500)


def test_an_unreachable_receiver_is_logged_with_the_error_type(sender: WebhookSender) -> None:
    sender.deliver("asaas", "http://127.0.0.1:9/hook", BODY, HEADERS)
    assert sender.wait_idle()
    (record,) = sender.log()
    assert record["outcome"] == "failed"
    assert record["error"] == "ConnectError"


def test_a_dropped_delivery_is_never_sent_but_is_logged(
    faults: FaultInjector, sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    faults.configure_webhooks("asaas", WebhookFaults(drop_rate=1.0))
    sender.deliver("asaas", receiver.url, BODY, HEADERS)
    assert sender.wait_idle()
    assert receiver.posts() == []
    assert sender.log()[0]["outcome"] == "dropped"


def test_a_duplicated_delivery_arrives_twice_with_identical_bytes(
    faults: FaultInjector, sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    faults.configure_webhooks("asaas", WebhookFaults(duplicate_rate=1.0))
    ids = sender.deliver("asaas", receiver.url, BODY, HEADERS)
    first, second = receiver.wait_for(2)
    assert first.body == second.body == BODY
    assert sender.log()[1]["duplicate_of"] == ids[0]


def test_a_delayed_delivery_is_overtaken_by_a_later_one(
    faults: FaultInjector, sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    faults.configure_webhooks("asaas", WebhookFaults(delay_rate=1.0, delay_seconds=0.3))
    sender.deliver("asaas", receiver.url, b'{"n":1}', HEADERS)
    faults.configure_webhooks("asaas", WebhookFaults())
    sender.deliver("asaas", receiver.url, b'{"n":2}', HEADERS)
    received = receiver.wait_for(2)
    assert [r.body for r in received] == [b'{"n":2}', b'{"n":1}']


def test_the_log_keeps_no_body_header_value_or_query_string(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    sender.deliver("asaas", receiver.url + "?token=abc123", BODY, HEADERS)
    assert sender.wait_idle()
    logged = repr(sender.log())
    for secret in ("s3cr3t-token", "maria@example.com", "abc123"):
        assert secret not in logged
    assert sender.log()[0]["header_names"] == sorted(HEADERS)


def test_close_stops_the_worker_and_a_later_delivery_restarts_it(
    sender: WebhookSender, receiver: WebhookReceiver
) -> None:
    sender.deliver("asaas", receiver.url, BODY, HEADERS)
    receiver.wait_for(1)
    sender.close()
    sender.deliver("asaas", receiver.url, BODY, HEADERS)
    receiver.wait_for(2)
