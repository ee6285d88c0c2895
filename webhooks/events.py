"""What a vendor's delivery says, in leadflow's words: the contract between the webhook
service and the journey's inbox processing.

`parse_delivery(vendor, body)` turns the raw bytes of one verified delivery into a list of
`VendorEvent`s. The service calls it before storing (a body not in the vendor's shape is a 400
and stores nothing); the journey calls it again on the stored raw body and maps each event's
`kind` to a transition. One delivery may carry several events (Facebook batches
`entry[].changes[]`, WhatsApp `statuses[]`); `delivery_event_id` names the whole delivery for
the inbox's uniqueness.

Per vendor (../shared/contracts/README.md):

- facebook: event_id `leadgen_id`, object the lead; no reference (the lead is new);
- pipedrive: event_id `meta.id` (one per change, webhooks v2), object the deal, reference the
  deal custom field named by `pipedrive_reference_field` when given;
- docusign: event_id `envelopeId:event:generatedDateTime` (Connect has no event id), object
  the envelope, reference the envelope custom field `leadflow_lead_id` (when Connect sent
  the envelope summary);
- asaas: event_id the event's `id` (`evt_…`), object the payment, reference
  `payment.externalReference`;
- whatsapp: event_id `<wamid>:<status>`, object the message, reference
  `biz_opaque_callback_data`.

`details` carries what the journey may need without re-reading the body (status, error codes,
value); it can hold personal data (a recipient's number): never log it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "VENDORS",
    "EventKind",
    "MalformedDelivery",
    "VendorEvent",
    "delivery_event_id",
    "parse_delivery",
]

VENDORS = ("facebook", "pipedrive", "docusign", "asaas", "whatsapp")
#: DocuSign custom field in which leadflow puts the lead's id when it sends an envelope.
DOCUSIGN_REFERENCE_FIELD = "leadflow_lead_id"


class EventKind(StrEnum):
    """What happened, as the journey reads it."""

    LEAD_CREATED = "lead_created"
    DEAL_WON = "deal_won"
    DEAL_LOST = "deal_lost"
    DEAL_UPDATED = "deal_updated"
    ENVELOPE_COMPLETED = "envelope_completed"
    ENVELOPE_DECLINED = "envelope_declined"
    ENVELOPE_VOIDED = "envelope_voided"
    ENVELOPE_OTHER = "envelope_other"
    PAYMENT_RECEIVED = "payment_received"  # Asaas PAYMENT_RECEIVED or PAYMENT_CONFIRMED
    PAYMENT_OTHER = "payment_other"
    MESSAGE_FAILED = "message_failed"
    MESSAGE_STATUS = "message_status"
    OTHER = "other"


class MalformedDelivery(ValueError):  # noqa: N818 - reads as what the delivery is
    """The body is not JSON, or not in the vendor's shape; the message says what is wrong
    (and never quotes the body, which holds personal data)."""


@dataclass(frozen=True)
class VendorEvent:
    """One thing a vendor told leadflow, parsed from a delivery."""

    vendor: str
    event_id: str
    kind: EventKind
    object_id: str | None
    reference: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def delivery_event_id(events: list[VendorEvent]) -> str:
    """The inbox's unique key of a delivery: its one event's id, or for a batch a digest of
    all of them (the same batch redelivered is the same key; an empty delivery never reaches
    here, parse_delivery refuses it)."""
    if len(events) == 1:
        return events[0].event_id[:255]
    digest = hashlib.sha256("\n".join(sorted(e.event_id for e in events)).encode()).hexdigest()
    return f"batch:{digest}"


def parse_delivery(
    vendor: str, body: bytes, *, pipedrive_reference_field: str | None = None
) -> list[VendorEvent]:
    """The events of one delivery; MalformedDelivery if it is not the vendor's JSON shape.

    `pipedrive_reference_field` is the 40-character key of the deal custom field in which
    leadflow keeps its lead id (Pipedrive names custom fields by hash, per account).
    """
    parser = _PARSERS.get(vendor)
    if parser is None:
        raise MalformedDelivery(f"unknown vendor {vendor!r}")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: JSON nested deeper than Python's stack (`[[[[…` within the size limit)
        raise MalformedDelivery(f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise MalformedDelivery("the body is not a JSON object")
    if vendor == "pipedrive":
        events = _pipedrive(payload, pipedrive_reference_field)
    else:
        events = parser(payload)
    if not events:
        raise MalformedDelivery(f"no {vendor} event in the delivery")
    return events


# -- helpers ---------------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedDelivery(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise MalformedDelivery(f"{where} must be a non-empty list")
    return value


def _id(value: Any, where: str) -> str:
    """An id the vendor may send as a number or a string (Meta's 17-digit ids: keep strings)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedDelivery(f"{where} is missing or not an id")
    text = str(value).strip()
    if not text:
        raise MalformedDelivery(f"{where} is empty")
    return text


def _optional_list(value: Any, where: str) -> list[Any]:
    """A list the vendor may leave out (absent, null or empty); any other type is malformed."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedDelivery(f"{where} must be a list")
    return value


def _optional_id(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) or None


# -- vendors ---------------------------------------------------------------------------------


def _facebook(payload: dict[str, Any]) -> list[VendorEvent]:
    if payload.get("object") != "page":
        raise MalformedDelivery("facebook: `object` must be 'page'")
    events: list[VendorEvent] = []
    for i, raw_entry in enumerate(_list(payload.get("entry"), "facebook: entry")):
        entry = _object(raw_entry, f"facebook: entry[{i}]")
        page_id = _id(entry.get("id"), f"facebook: entry[{i}].id")
        for j, raw_change in enumerate(_list(entry.get("changes"), f"entry[{i}].changes")):
            change = _object(raw_change, f"facebook: entry[{i}].changes[{j}]")
            where = f"facebook: entry[{i}].changes[{j}]"
            value = _object(change.get("value"), f"{where}.value")
            if change.get("field") != "leadgen":
                events.append(
                    VendorEvent(
                        "facebook",
                        f"{page_id}:{change.get('field')}:{entry.get('time')}",
                        EventKind.OTHER,
                        page_id,
                        details={"field": change.get("field")},
                    )
                )
                continue
            leadgen_id = _id(value.get("leadgen_id"), f"{where}.value.leadgen_id")
            events.append(
                VendorEvent(
                    "facebook",
                    leadgen_id,
                    EventKind.LEAD_CREATED,
                    leadgen_id,
                    details={
                        "page_id": _optional_id(value.get("page_id")) or page_id,
                        "form_id": _optional_id(value.get("form_id")),
                        "ad_id": _optional_id(value.get("ad_id")),
                        "created_time": value.get("created_time"),
                    },
                )
            )
    return events


_DEAL_STATUS_KINDS = {"won": EventKind.DEAL_WON, "lost": EventKind.DEAL_LOST}


def _pipedrive(payload: dict[str, Any], reference_field: str | None) -> list[VendorEvent]:
    meta = payload.get("meta")
    if isinstance(meta, dict) and "v" in payload and "current" in payload:
        raise MalformedDelivery(
            "pipedrive: a webhooks v1 payload; subscribe with version 2.0 (leadflow webhooks "
            "register does)"
        )
    meta = _object(meta, "pipedrive: meta")
    event_id = _id(meta.get("id"), "pipedrive: meta.id")
    entity = meta.get("entity")
    action = meta.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise MalformedDelivery("pipedrive: meta.entity and meta.action must be strings")
    data = payload.get("data")
    previous = payload.get("previous")
    if data is not None and not isinstance(data, dict):
        raise MalformedDelivery("pipedrive: data must be an object or null")
    if previous is not None and not isinstance(previous, dict):
        raise MalformedDelivery("pipedrive: previous must be an object or null")
    data = data or {}
    previous = previous or {}
    object_id = _optional_id(data.get("id")) or _optional_id(meta.get("entity_id"))
    if entity != "deal":
        return [
            VendorEvent(
                "pipedrive",
                event_id,
                EventKind.OTHER,
                object_id,
                details={"entity": entity, "action": action},
            )
        ]
    status = data.get("status")
    kind = EventKind.DEAL_UPDATED
    if action in ("change", "create") and isinstance(status, str) and status in _DEAL_STATUS_KINDS:
        was = previous.get("status") if action == "change" else None
        # a change that did not touch the status (v2 sends only changed fields in previous)
        # is not a new win: `previous` then has no status key at all
        if action == "create" or ("status" in previous and was != status):
            kind = _DEAL_STATUS_KINDS[status]
    reference = None
    custom_fields = data.get("custom_fields")
    if reference_field and isinstance(custom_fields, dict):
        value = custom_fields.get(reference_field)
        if isinstance(value, dict):  # v2 wraps some field types: {"value": ..., ...}
            value = value.get("value")
        reference = _optional_id(value)
    return [
        VendorEvent(
            "pipedrive",
            event_id,
            kind,
            object_id,
            reference,
            details={
                "action": action,
                "status": status,
                "previous_status": previous.get("status"),
                "lost_reason": data.get("lost_reason"),
                "value": data.get("value"),
                "currency": data.get("currency"),
                "person_id": _optional_id(data.get("person_id")),
                "attempt": meta.get("attempt"),
            },
        )
    ]


_ENVELOPE_KINDS = {
    "envelope-completed": EventKind.ENVELOPE_COMPLETED,
    "envelope-declined": EventKind.ENVELOPE_DECLINED,
    "envelope-voided": EventKind.ENVELOPE_VOIDED,
}


def _docusign(payload: dict[str, Any]) -> list[VendorEvent]:
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise MalformedDelivery("docusign: `event` must be a Connect event name")
    data = _object(payload.get("data"), "docusign: data")
    envelope_id = _id(data.get("envelopeId"), "docusign: data.envelopeId")
    generated = payload.get("generatedDateTime")
    if not isinstance(generated, str) or not generated:
        raise MalformedDelivery("docusign: generatedDateTime is missing")
    summary = data.get("envelopeSummary")
    reference = None
    status = None
    if isinstance(summary, dict):
        status = summary.get("status")
        custom_fields = summary.get("customFields")
        fields = custom_fields.get("textCustomFields") if isinstance(custom_fields, dict) else []
        for custom in fields if isinstance(fields, list) else []:
            if isinstance(custom, dict) and custom.get("name") == DOCUSIGN_REFERENCE_FIELD:
                reference = _optional_id(custom.get("value"))
    return [
        VendorEvent(
            "docusign",
            f"{envelope_id}:{event}:{generated}",
            _ENVELOPE_KINDS.get(event, EventKind.ENVELOPE_OTHER),
            envelope_id,
            reference,
            details={
                "event": event,
                "status": status,
                "generated": generated,
                "retry_count": payload.get("retryCount"),
                "recipient_id": _optional_id(data.get("recipientId")),
            },
        )
    ]


_PAID_EVENTS = frozenset({"PAYMENT_RECEIVED", "PAYMENT_CONFIRMED"})


def _asaas(payload: dict[str, Any]) -> list[VendorEvent]:
    event_id = _id(payload.get("id"), "asaas: id")
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise MalformedDelivery("asaas: `event` must be an event name")
    if not event.startswith("PAYMENT_"):
        return [VendorEvent("asaas", event_id, EventKind.OTHER, None, details={"event": event})]
    payment = _object(payload.get("payment"), "asaas: payment")
    payment_id = _id(payment.get("id"), "asaas: payment.id")
    kind = EventKind.PAYMENT_RECEIVED if event in _PAID_EVENTS else EventKind.PAYMENT_OTHER
    return [
        VendorEvent(
            "asaas",
            event_id,
            kind,
            payment_id,
            _optional_id(payment.get("externalReference")),
            details={
                "event": event,
                "status": payment.get("status"),
                "value": payment.get("value"),
                "billing_type": payment.get("billingType"),
                "payment_date": payment.get("paymentDate") or payment.get("clientPaymentDate"),
            },
        )
    ]


def _whatsapp(payload: dict[str, Any]) -> list[VendorEvent]:
    if payload.get("object") != "whatsapp_business_account":
        raise MalformedDelivery("whatsapp: `object` must be 'whatsapp_business_account'")
    events: list[VendorEvent] = []
    for i, raw_entry in enumerate(_list(payload.get("entry"), "whatsapp: entry")):
        entry = _object(raw_entry, f"whatsapp: entry[{i}]")
        for j, raw_change in enumerate(_list(entry.get("changes"), f"entry[{i}].changes")):
            where = f"whatsapp: entry[{i}].changes[{j}]"
            change = _object(raw_change, where)
            value = _object(change.get("value"), f"{where}.value")
            statuses = _optional_list(value.get("statuses"), f"{where}.value.statuses")
            for k, raw_status in enumerate(statuses):
                status = _object(raw_status, f"{where}.value.statuses[{k}]")
                events.append(_whatsapp_status(status, f"{where}.value.statuses[{k}]"))
            messages = _optional_list(value.get("messages"), f"{where}.value.messages")
            for k, raw_message in enumerate(messages):
                message = _object(raw_message, f"{where}.value.messages[{k}]")
                message_id = _id(message.get("id"), f"{where}.value.messages[{k}].id")
                events.append(
                    VendorEvent(
                        "whatsapp",
                        f"{message_id}:inbound",
                        EventKind.OTHER,
                        message_id,
                        details={
                            "inbound": True,
                            "type": message.get("type"),
                            # the client wrote: their 24-hour customer-service window opens
                            "from": _optional_id(message.get("from")),
                            "timestamp": message.get("timestamp"),
                        },
                    )
                )
    return events


def _whatsapp_status(status: dict[str, Any], where: str) -> VendorEvent:
    message_id = _id(status.get("id"), f"{where}.id")
    state = status.get("status")
    if not isinstance(state, str) or not state:
        raise MalformedDelivery(f"{where}.status is missing")
    errors = [
        {"code": e.get("code"), "title": e.get("title")}
        for e in _optional_list(status.get("errors"), f"{where}.errors")
        if isinstance(e, dict)
    ]
    return VendorEvent(
        "whatsapp",
        f"{message_id}:{state}",
        EventKind.MESSAGE_FAILED if state == "failed" else EventKind.MESSAGE_STATUS,
        message_id,
        _optional_id(status.get("biz_opaque_callback_data")),
        details={
            "status": state,
            "timestamp": status.get("timestamp"),
            "recipient_id": status.get("recipient_id"),
            "errors": errors,
        },
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], list[VendorEvent]]] = {
    "facebook": _facebook,
    "pipedrive": lambda payload: _pipedrive(payload, None),
    "docusign": _docusign,
    "asaas": _asaas,
    "whatsapp": _whatsapp,
}
