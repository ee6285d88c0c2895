"""The ASGI app: one endpoint per vendor that verifies, stores, acknowledges, then triggers.

Each delivery goes through the same steps, in this order, and stops at the first refusal:

1. 413 when `Content-Length` announces more than the limit (before any byte is read);
2. 401 when a header-only credential is wrong (Pipedrive basic auth, Asaas token);
3. the body is streamed, 413 as soon as the running size passes the limit;
4. 401 when the HMAC over the raw bytes does not match (Meta, DocuSign, any active key);
5. 400 when the body is not JSON, not the vendor's shape (webhooks/events.py), or its event
   id cannot be stored (a NUL in it);
6. stored in the inbox, unique on (vendor, event id), committed (deliveries arriving together
   share one transaction: webhooks/inbox_writer.py);
7. 200 — `stored` for a new delivery, `duplicate` for a redelivery (nothing new stored);
8. after the response is sent, a new delivery is handed to the trigger (webhooks/trigger.py).

Nothing is stored before 6, and every refusal is logged with the vendor and the reason only,
never the body or a header value. `/healthz` says the process is up, `/readyz` that the ledger
answers, `/docs` is the OpenAPI page.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Route

from blocks.webhook_signatures import (
    HUB_SIGNATURE_HEADER,
    meta_handshake,
    verify_asaas_token,
    verify_basic_auth,
    verify_docusign_signatures,
    verify_hub_signature,
)
from leadflow.privacy import install_masking, mask_text, redact_secret_headers
from ledger import InvalidValue, Ledger, LedgerError
from webhooks.events import MalformedDelivery, delivery_event_id, parse_delivery
from webhooks.inbox_writer import InboxWriter
from webhooks.settings import TriggerMode, WebhookSettings
from webhooks.trigger import (
    DeploymentTrigger,
    InProcessTrigger,
    NewDelivery,
    NoTrigger,
    Runner,
    Trigger,
)

logger = install_masking(logging.getLogger("leadflow.webhooks"))

PREFIX = "/webhooks"
_RAW_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The vendor's JSON delivery, verified over its raw bytes.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored (or a redelivery of a stored delivery)"},
    400: {"description": "Not JSON, or not the vendor's shape; nothing stored"},
    401: {"description": "Missing, forged or wrong-key signature; nothing stored"},
    413: {"description": "Body over the size limit; nothing stored"},
}


class Refused(Exception):  # noqa: N818 - reads as what happened to the delivery
    """A delivery refused with `status` and a message safe to show and log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class _Vendor:
    """How one vendor authenticates: a check on headers alone, and/or one over the raw body."""

    name: str
    check_headers: Callable[[Headers], bool] | None = None
    check_body: Callable[[bytes, Headers], bool] | None = None


def _vendors(settings: WebhookSettings) -> dict[str, _Vendor]:
    def secret(value: Any) -> str:
        return value.get_secret_value() if value is not None else ""

    facebook_secret = secret(settings.facebook_app_secret)
    whatsapp_secret = secret(settings.whatsapp_app_secret)
    pipedrive_user = settings.pipedrive_user or ""
    pipedrive_password = secret(settings.pipedrive_password)
    asaas_token = secret(settings.asaas_token)
    docusign_keys = settings.docusign_keys()
    return {
        "facebook": _Vendor(
            "facebook",
            check_body=lambda body, headers: verify_hub_signature(
                facebook_secret, body, headers.get(HUB_SIGNATURE_HEADER)
            ),
        ),
        "whatsapp": _Vendor(
            "whatsapp",
            check_body=lambda body, headers: verify_hub_signature(
                whatsapp_secret, body, headers.get(HUB_SIGNATURE_HEADER)
            ),
        ),
        "pipedrive": _Vendor(
            "pipedrive",
            check_headers=lambda headers: verify_basic_auth(
                pipedrive_user, pipedrive_password, headers.get("authorization")
            ),
        ),
        "docusign": _Vendor(
            "docusign",
            check_body=lambda body, headers: verify_docusign_signatures(
                docusign_keys, body, headers
            ),
        ),
        "asaas": _Vendor(
            "asaas",
            check_headers=lambda headers: verify_asaas_token(
                asaas_token, headers.get("asaas-access-token")
            ),
        ),
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit` bytes.

    An announced `Content-Length` over the limit is refused before any byte is read; a body
    sent without one (chunked) or lying about it is counted as it streams in.
    """
    announced = request.headers.get("content-length")
    if announced is not None:
        try:
            size = int(announced)
        except ValueError:
            raise Refused(400, "Content-Length is not a number") from None
        if size > limit:
            raise Refused(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Refused(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _trigger_for(settings: WebhookSettings, runner: Runner | None) -> Trigger:
    if settings.trigger is TriggerMode.DEPLOYMENT:
        return DeploymentTrigger(settings.deployment_name)
    if settings.trigger is TriggerMode.NONE:
        return NoTrigger()
    return InProcessTrigger(runner)


def _default_ledger() -> Ledger:
    """The process's shared ledger on LEADFLOW_DATABASE_URL (one pool for every request)."""
    from leadflow.settings import get_settings
    from ledger import shared_ledger

    return shared_ledger(get_settings().database_url)


def create_app(
    settings: WebhookSettings | None = None,
    *,
    ledger: Ledger | None = None,
    runner: Runner | None = None,
    trigger: Trigger | None = None,
    pipedrive_reference_field: str | None = None,
) -> FastAPI:
    """The webhook service.

    `ledger` defaults to the process's shared ledger on `LEADFLOW_DATABASE_URL`; `runner`
    (in-process mode) receives batches of new inbox ids; `trigger` replaces the one chosen by
    `settings.trigger` altogether (tests record what was triggered).
    """
    settings = settings or WebhookSettings()
    store = ledger or _default_ledger()
    trigger = trigger or _trigger_for(settings, runner)
    vendors = _vendors(settings)
    limit = settings.max_body_bytes
    writer = InboxWriter(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        await trigger.start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            await writer.stop()
            await trigger.stop()

    app = FastAPI(
        title="leadflow webhooks",
        description="Verifies, stores and acknowledges vendor webhooks, then triggers the "
        "journey. Every delivery is checked over its raw body; nothing unverified is stored.",
        version="1",
        lifespan=lifespan,
    )
    app.state.ledger = store
    app.state.trigger = trigger
    app.state.settings = settings

    def refuse(vendor: str, refused: Refused) -> JSONResponse:
        logger.warning("refused a %s delivery: %d %s", vendor, refused.status, refused.reason)
        return JSONResponse({"detail": refused.reason}, status_code=refused.status)

    async def receive(vendor: str, request: Request) -> Response:
        spec = vendors[vendor]
        try:
            if spec.check_headers is not None and not spec.check_headers(request.headers):
                # header-only credentials are checked before the body is read at all
                if _announced_over(request, limit):
                    raise Refused(413, f"the body is larger than {limit} bytes")
                raise Refused(401, "missing or wrong credentials")
            body = await read_body(request, limit)
            if spec.check_body is not None and not spec.check_body(body, request.headers):
                raise Refused(401, "missing, forged or wrong-key signature")
            try:
                events = parse_delivery(
                    vendor, body, pipedrive_reference_field=pipedrive_reference_field
                )
            except MalformedDelivery as exc:
                raise Refused(400, str(exc)) from None
        except Refused as refused:
            return refuse(vendor, refused)
        event_id = delivery_event_id(events)
        headers = redact_secret_headers(dict(request.headers))
        try:
            inbox_id = await writer.store(vendor, event_id, body, headers)
        except InvalidValue as exc:  # an event id no database can key (a NUL in it)
            return refuse(vendor, Refused(400, f"the delivery's {exc}"))
        except LedgerError as exc:
            logger.error("could not store a %s delivery: %s", vendor, mask_text(str(exc)))
            return JSONResponse({"detail": "the ledger is unavailable"}, status_code=503)
        except SQLAlchemyError as exc:
            logger.error("could not store a %s delivery: %s", vendor, type(exc).__name__)
            return JSONResponse({"detail": "the ledger is unavailable"}, status_code=503)
        if inbox_id is None:
            return JSONResponse({"status": "duplicate", "event_id": event_id})
        delivery = NewDelivery(vendor, event_id, inbox_id)

        async def trigger_after_response() -> None:  # async: no thread hop per delivery
            trigger.submit(delivery)

        return JSONResponse(
            {"status": "stored", "event_id": event_id},
            background=BackgroundTask(trigger_after_response),
        )

    def add_post(vendor: str, summary: str) -> None:
        async def endpoint(request: Request) -> Response:
            return await receive(vendor, request)

        endpoint.__name__ = f"receive_{vendor}"
        # Served by a plain Starlette route placed first (FastAPI's per-request dependency
        # solving has nothing to do for a raw body and costs a fifth of the handling);
        # the API route below stays for /docs.
        app.router.routes.insert(0, Route(f"{PREFIX}/{vendor}", endpoint, methods=["POST"]))
        app.add_api_route(
            f"{PREFIX}/{vendor}",
            endpoint,
            methods=["POST"],
            summary=summary,
            responses=_ANSWERS,
            openapi_extra=_RAW_JSON_BODY,
            tags=["deliveries"],
        )

    def add_handshake(vendor: str) -> None:
        async def handshake(request: Request) -> Response:
            query = request.query_params
            challenge = meta_handshake(
                settings.meta_verify_token(vendor) or "",
                query.get("hub.mode"),
                query.get("hub.verify_token"),
                query.get("hub.challenge"),
            )
            if challenge is None:
                logger.warning("refused a %s subscription handshake: wrong token", vendor)
                return PlainTextResponse("verification failed", status_code=403)
            return PlainTextResponse(challenge)

        handshake.__name__ = f"verify_{vendor}_subscription"
        app.add_api_route(
            f"{PREFIX}/{vendor}",
            handshake,
            methods=["GET"],
            summary=f"Meta's subscription handshake ({vendor}): echoes hub.challenge",
            tags=["handshakes"],
            responses={200: {"description": "hub.challenge"}, 403: {"description": "refused"}},
        )

    add_handshake("facebook")
    add_post("facebook", "Facebook Lead Ads leadgen changes (X-Hub-Signature-256)")
    add_post("pipedrive", "Pipedrive deal changes, webhooks v2 (HTTP basic auth)")
    add_post("docusign", "DocuSign Connect JSON SIM (X-DocuSign-Signature-N, any active key)")
    add_post("asaas", "Asaas payment events (asaas-access-token)")
    add_handshake("whatsapp")
    add_post("whatsapp", "WhatsApp message statuses (X-Hub-Signature-256)")

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="The ledger database answers")
    async def readyz() -> Response:
        try:
            revision = await run_in_threadpool(store.current_revision)
        except LedgerError as exc:
            return JSONResponse(
                {"status": "unavailable", "detail": mask_text(str(exc))}, status_code=503
            )
        if revision is None:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "detail": "the ledger has no schema: leadflow db upgrade",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ready", "ledger": store.url})

    return app


def _announced_over(request: Request, limit: int) -> bool:
    announced = request.headers.get("content-length")
    return announced is not None and announced.isdigit() and int(announced) > limit


def _freeze_startup_objects() -> None:
    """Move what imports and setup allocated (FastAPI, SQLAlchemy, Prefect: hundreds of
    thousands of objects alive for the whole process) out of the garbage collector's sight.

    Otherwise every full collection walks them all: a quarter of a second each, and a tenth
    of the service's CPU under a burst of deliveries (measured). Once per process: a test
    process starting the service again and again freezes only the first time.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
