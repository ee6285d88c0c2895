"""The webhook service: verify a vendor's signature, store the delivery, acknowledge, trigger.

    from webhooks import create_app            # the ASGI app (`leadflow webhooks serve`)
    from webhooks import parse_delivery        # what a stored delivery means (the journey)

Modules: app.py (endpoints, order of checks), events.py (parse_delivery, VendorEvent,
EventKind: the contract with the journey), inbox_writer.py (group commit), trigger.py
(deployment / in-process / none), registration.py (`leadflow webhooks register`),
settings.py (LEADFLOW_WEBHOOK_* secrets). The verifiers live in blocks/webhook_signatures.py.
"""

from webhooks.app import create_app
from webhooks.events import (
    EventKind,
    MalformedDelivery,
    VendorEvent,
    delivery_event_id,
    parse_delivery,
)
from webhooks.settings import TriggerMode, WebhookSettings

__all__ = [
    "EventKind",
    "MalformedDelivery",
    "TriggerMode",
    "VendorEvent",
    "WebhookSettings",
    "create_app",
    "delivery_event_id",
    "parse_delivery",
]
