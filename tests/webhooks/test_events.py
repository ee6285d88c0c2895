"""parse_delivery: the contract with the journey — what each vendor's delivery means."""

from __future__ import annotations

import json

import pytest

from tests.webhooks.conftest import (
    asaas_payload,
    docusign_payload,
    facebook_payload,
    pipedrive_payload,
    whatsapp_payload,
)
from webhooks.events import (
    EventKind,
    MalformedDelivery,
    VendorEvent,
    delivery_event_id,
    parse_delivery,
)


def test_facebook_batches_become_one_event_per_lead_with_17_digit_ids_kept_exact() -> None:
    body = facebook_payload(["12345678901234567", "12345678901234568"])
    events = parse_delivery("facebook", body)
    assert [e.event_id for e in events] == ["12345678901234567", "12345678901234568"]
    assert {e.kind for e in events} == {EventKind.LEAD_CREATED}
    assert events[0].object_id == "12345678901234567"
    assert events[0].details["page_id"] == "1100200300400500"
    batch_id = delivery_event_id(events)
    assert batch_id.startswith("batch:")
    assert batch_id == delivery_event_id(list(reversed(events)))  # same batch, same key
    assert delivery_event_id(events[:1]) == "12345678901234567"


@pytest.mark.parametrize(
    ("status", "previous", "kind"),
    [
        ("won", "open", EventKind.DEAL_WON),
        ("lost", "open", EventKind.DEAL_LOST),
        ("won", None, EventKind.DEAL_UPDATED),  # a won deal edited again is not a new win
        ("open", "won", EventKind.DEAL_UPDATED),
    ],
)
def test_pipedrive_deal_changes(status: str, previous: str | None, kind: EventKind) -> None:
    (event,) = parse_delivery("pipedrive", pipedrive_payload("ev-1", 9, status, previous))
    assert (event.event_id, event.kind, event.object_id) == ("ev-1", kind, "9")


def test_pipedrive_reference_comes_from_the_named_custom_field() -> None:
    payload = json.loads(pipedrive_payload("ev-2"))
    payload["data"]["custom_fields"] = {"a" * 40: "lead:42", "b" * 40: {"value": "x"}}
    body = json.dumps(payload).encode()
    assert parse_delivery("pipedrive", body)[0].reference is None
    assert parse_delivery("pipedrive", body, pipedrive_reference_field="a" * 40)[0].reference == (
        "lead:42"
    )
    assert parse_delivery("pipedrive", body, pipedrive_reference_field="b" * 40)[0].reference == "x"


def test_pipedrive_other_entities_are_other() -> None:
    payload = json.loads(pipedrive_payload("ev-3"))
    payload["meta"]["entity"] = "person"
    (event,) = parse_delivery("pipedrive", json.dumps(payload).encode())
    assert event.kind is EventKind.OTHER


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("envelope-completed", EventKind.ENVELOPE_COMPLETED),
        ("envelope-declined", EventKind.ENVELOPE_DECLINED),
        ("envelope-voided", EventKind.ENVELOPE_VOIDED),
        ("envelope-sent", EventKind.ENVELOPE_OTHER),
        ("recipient-completed", EventKind.ENVELOPE_OTHER),
    ],
)
def test_docusign_events_and_reference(event: str, kind: EventKind) -> None:
    (parsed,) = parse_delivery("docusign", docusign_payload("env-9", event, "T1", lead_id="42"))
    assert parsed == VendorEvent(
        "docusign", f"env-9:{event}:T1", kind, "env-9", "42", parsed.details
    )


def test_docusign_without_envelope_summary_has_no_reference() -> None:
    payload = json.loads(docusign_payload("env-1"))
    del payload["data"]["envelopeSummary"]  # what Connect sends without includeData
    (event,) = parse_delivery("docusign", json.dumps(payload).encode())
    assert event.reference is None
    assert event.kind is EventKind.ENVELOPE_COMPLETED


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("PAYMENT_RECEIVED", EventKind.PAYMENT_RECEIVED),
        ("PAYMENT_CONFIRMED", EventKind.PAYMENT_RECEIVED),
        ("PAYMENT_OVERDUE", EventKind.PAYMENT_OTHER),
        ("PAYMENT_CREATED", EventKind.PAYMENT_OTHER),
    ],
)
def test_asaas_payment_events(name: str, kind: EventKind) -> None:
    (event,) = parse_delivery("asaas", asaas_payload("evt_abc&1", name, "lead:7"))
    assert (event.event_id, event.kind, event.reference) == ("evt_abc&1", kind, "lead:7")
    assert event.object_id.startswith("pay_")


def test_whatsapp_failed_status_carries_the_error_code() -> None:
    (event,) = parse_delivery("whatsapp", whatsapp_payload("wamid.X", "failed", code=131047))
    assert event.kind is EventKind.MESSAGE_FAILED
    assert event.event_id == "wamid.X:failed"
    assert event.details["errors"] == [{"code": 131047, "title": "Re-engagement message"}]
    (delivered,) = parse_delivery("whatsapp", whatsapp_payload("wamid.X", "delivered"))
    assert delivered.kind is EventKind.MESSAGE_STATUS
    assert delivered.event_id != event.event_id


def test_unknown_vendor_and_non_json_are_malformed() -> None:
    with pytest.raises(MalformedDelivery, match="unknown vendor"):
        parse_delivery("stripe", b"{}")
    with pytest.raises(MalformedDelivery, match="not JSON"):
        parse_delivery("asaas", b"\xff\xfe")


def test_the_public_api_is_pinned() -> None:
    import webhooks

    assert sorted(webhooks.__all__) == [
        "EventKind",
        "MalformedDelivery",
        "TriggerMode",
        "VendorEvent",
        "WebhookSettings",
        "create_app",
        "delivery_event_id",
        "parse_delivery",
    ]


def test_whatsapp_inbound_message_says_who_wrote_and_when() -> None:
    value = {
        "messaging_product": "whatsapp",
        "messages": [
            {"from": "5511999998888", "id": "wamid.IN", "timestamp": "1750263773", "type": "text"}
        ],
    }
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()
    (event,) = parse_delivery("whatsapp", body)
    assert (event.kind, event.event_id) == (EventKind.OTHER, "wamid.IN:inbound")
    assert event.details["inbound"] is True
    assert event.details["from"] == "5511999998888"
    assert event.details["timestamp"] == "1750263773"
