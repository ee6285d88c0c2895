"""The sandbox's admin API under `/__sandbox__/`: the operator's and the tests' control panel.

It sits outside every vendor's surface (no vendor has a `/__sandbox__` path) and is never
subject to fault injection. It tells a user what to type into leadflow's Blocks (base URLs and
credentials), shows what was created (counters, a state dump, the webhook delivery log), and
steers the sandbox: reset, faults per vendor and route, webhook targets, the simulated people,
and vendor-specific actions that a vendor module contributes with
`build_admin_router(sandbox)` (mounted at `/__sandbox__/<vendor>/`, e.g. "submit N Facebook
leads" or "a WhatsApp user writes in").
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.core import Sandbox
from sandbox.faults import RouteFaults, WebhookFaults
from sandbox.people import PersonBehaviour
from sandbox.vendor_api import AdminBody

MAX_ADMIN_BODY_BYTES = 1024 * 1024
"""The largest admin request body read (1 MiB): bigger is refused with 413 before it is read."""


class RouteFaultsBody(AdminBody):
    """One route's faults: `route` is "METHOD /path/template" as the vendor writes it."""

    route: str = Field(min_length=3, max_length=500)
    faults: RouteFaults


class WebhookTargetBody(AdminBody):
    url: AnyHttpUrl


class WaitBody(AdminBody):
    timeout_seconds: float = Field(10.0, ge=0, le=600)


def _field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors naming the field and the rule, never the value that was sent.

    FastAPI's default 422 echoes each rejected `input`: a 50 MB body comes back whole, and a
    NaN cannot even be written as JSON (a 500). The location and message are what an
    operator needs to fix the call.
    """
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error["type"]}
        for error in errors
    ]


async def _answer_invalid_body(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": _field_errors(list(exc.errors()))})


def build_app(sandbox: Sandbox) -> ASGIApp:
    """The admin API as an ASGI app: its routes, 422s without echoes, bodies capped at 1 MiB."""
    app = FastAPI(title="leadflow sandbox admin", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, _answer_invalid_body)
    app.include_router(build_router(sandbox))
    return BodyLimit(app, MAX_ADMIN_BODY_BYTES)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, before reading it whole.

    A declared `Content-Length` over the limit is refused at once; a chunked body is counted
    as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # an HTTPException passes through FastAPI's body parsing as it is
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": f"request body over {self.limit} bytes"},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _known_vendor(sandbox: Sandbox, vendor: str) -> None:
    if vendor not in sandbox.default_credentials:
        raise HTTPException(404, f"no vendor {vendor!r} is mounted in this sandbox")


def build_router(sandbox: Sandbox) -> APIRouter:
    """The admin routes for `sandbox` (mounted by sandbox/app.py at /__sandbox__)."""
    router = APIRouter(tags=["sandbox admin"])

    @router.get("/")
    def overview() -> dict[str, Any]:
        """What a client needs: each vendor's base URL and the credentials it accepts."""
        return {
            "seed": sandbox.seed,
            "url": sandbox.public_base_url,
            "vendors": {
                vendor: {"base_url": url, "credentials": sandbox.effective_credentials()[vendor]}
                for vendor, url in sandbox.base_urls().items()
            },
            "webhook_targets": dict(sandbox.webhook_targets),
            "allow_external_webhook_targets": sandbox.allow_external_webhook_targets,
        }

    @router.get("/counters")
    def counters() -> dict[str, dict[str, int]]:
        return sandbox.state.counters()

    @router.get("/state")
    def state() -> dict[str, Any]:
        return sandbox.state.dump()

    @router.post("/reset")
    def reset() -> dict[str, str]:
        """Forget every object, counter, fault rule and logged delivery (targets stay)."""
        sandbox.state.reset()
        sandbox.faults.clear()
        sandbox.webhooks.clear_log()
        return {"status": "reset"}

    @router.put("/credentials/{vendor}")
    def set_credentials(vendor: str, values: dict[str, str]) -> dict[str, str]:
        """Override some of a vendor's accepted credentials (the others keep their defaults)."""
        _known_vendor(sandbox, vendor)
        sandbox.credentials.setdefault(vendor, {}).update(values)
        return sandbox.effective_credentials()[vendor]

    # -- faults --------------------------------------------------------------------------
    @router.get("/faults")
    def faults() -> dict[str, Any]:
        return sandbox.faults.describe()

    @router.put("/faults/{vendor}")
    def set_vendor_faults(vendor: str, body: RouteFaults) -> dict[str, Any]:
        _known_vendor(sandbox, vendor)
        sandbox.faults.configure(vendor, body)
        return sandbox.faults.describe()

    @router.put("/faults/{vendor}/routes")
    def set_route_faults(vendor: str, body: RouteFaultsBody) -> dict[str, Any]:
        _known_vendor(sandbox, vendor)
        sandbox.faults.configure(vendor, body.faults, route=body.route)
        return sandbox.faults.describe()

    @router.put("/faults/{vendor}/webhooks")
    def set_webhook_faults(vendor: str, body: WebhookFaults) -> dict[str, Any]:
        _known_vendor(sandbox, vendor)
        sandbox.faults.configure_webhooks(vendor, body)
        return sandbox.faults.describe()

    @router.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        sandbox.faults.clear()
        return sandbox.faults.describe()

    @router.delete("/faults/{vendor}")
    def clear_vendor_faults(vendor: str) -> dict[str, Any]:
        _known_vendor(sandbox, vendor)
        sandbox.faults.clear(vendor)
        return sandbox.faults.describe()

    # -- webhooks ------------------------------------------------------------------------
    @router.get("/webhook-targets")
    def webhook_targets() -> dict[str, str]:
        return dict(sandbox.webhook_targets)

    @router.put("/webhook-targets/{vendor}")
    def set_webhook_target(vendor: str, body: WebhookTargetBody) -> dict[str, str]:
        _known_vendor(sandbox, vendor)
        if not sandbox.webhook_target_allowed(str(body.url)):
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", "url"],
                        "msg": "a webhook target must be on loopback (127.0.0.1, ::1, localhost) "
                        "unless the sandbox runs with allow_external_webhook_targets",
                        "type": "webhook_target_not_loopback",
                    }
                ],
            )
        sandbox.webhook_targets[vendor] = str(body.url)
        return dict(sandbox.webhook_targets)

    @router.delete("/webhook-targets/{vendor}")
    def clear_webhook_target(vendor: str) -> dict[str, str]:
        sandbox.webhook_targets.pop(vendor, None)
        return dict(sandbox.webhook_targets)

    @router.get("/webhooks")
    def webhook_log(vendor: str | None = None) -> list[dict[str, Any]]:
        return sandbox.webhooks.log(vendor)

    @router.delete("/webhooks")
    def clear_webhook_log() -> dict[str, str]:
        """Forget the delivery log (objects, counters and faults stay)."""
        sandbox.webhooks.clear_log()
        return {"status": "cleared"}

    @router.post("/webhooks/wait")
    def wait_for_webhooks(body: WaitBody | None = None) -> dict[str, bool]:
        """Block until every queued delivery finished (a test's or demo's synchronisation)."""
        idle = sandbox.webhooks.wait_idle((body or WaitBody()).timeout_seconds)
        return {"idle": idle}

    # -- people --------------------------------------------------------------------------
    @router.get("/people")
    def people() -> dict[str, Any]:
        return sandbox.people.describe()

    @router.post("/people/start")
    def start_people() -> dict[str, Any]:
        sandbox.people.start()
        return sandbox.people.describe()

    @router.post("/people/stop")
    def stop_people() -> dict[str, Any]:
        sandbox.people.stop()
        return sandbox.people.describe()

    @router.put("/people/{role}")
    def configure_person(role: str, body: PersonBehaviour) -> dict[str, Any]:
        try:
            sandbox.people.configure(role, body)
        except KeyError:
            raise HTTPException(404, f"no simulated person {role!r}") from None
        return sandbox.people.describe()

    @router.get("/people/actions")
    def person_actions() -> list[dict[str, Any]]:
        return sandbox.people.actions()

    @router.post("/people/{role}/{outcome}/{object_id}")
    def act(role: str, outcome: Literal["accept", "refuse"], object_id: str) -> dict[str, Any]:
        """A person acts now: win this deal, sign this envelope, pay this charge (or refuse)."""
        if role not in sandbox.roles:
            raise HTTPException(404, f"no simulated person {role!r}")
        if object_id not in sandbox.roles[role].pending():
            raise HTTPException(409, f"{object_id!r} is not waiting for the {role}")
        try:
            result = sandbox.people.act(role, object_id, outcome)
        except Exception as error:  # the vendor refused (cannot refuse, state moved on...)
            raise HTTPException(409, f"{type(error).__name__}: {error}") from None
        return {"role": role, "outcome": outcome, "object_id": object_id, "result": result}

    # -- vendor-specific admin actions ---------------------------------------------------
    from sandbox.app import VENDOR_MODULES  # the registry lives beside the app that mounts it

    for vendor, module in VENDOR_MODULES.items():
        if vendor not in sandbox.default_credentials:
            continue
        build_admin = getattr(module, "build_admin_router", None)
        if build_admin is not None:
            router.include_router(build_admin(sandbox), prefix=f"/{vendor}")

    return router
