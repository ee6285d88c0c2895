"""The sandbox as one ASGI app: each vendor's emulator under `/<vendor>`, admin at `/__sandbox__`.

This is what `leadflow sandbox serve` and `sandbox.server.running_sandbox` serve. A vendor's base
URL is `http://host:port/<vendor>`; below it the vendor's own path layout (`/asaas/v3/payments`,
`/facebook/v23.0/{form-id}/leads`...), so a leadflow client differs between the sandbox and the
real vendor only by its base URL. The admin API lives outside every vendor's surface.

The vendor modules are listed in `VENDOR_MODULES`, a static registry in journey order: every
emulator exists, so a missing or misspelt one is an ImportError at once rather than a vendor
silently absent from the app.

A request under a vendor's prefix that matches none of its routes gets that vendor's own error
envelope (the module's `render_unknown_route`), never FastAPI's `{"detail": "Not Found"}`: a
client that calls a wrong path must fail here the way it would fail at the vendor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import admin
from sandbox.core import VENDORS, Sandbox
from sandbox.faults import install_fault_handling
from sandbox.vendors import asaas, docusign, facebook, hostinger, pipedrive, whatsapp

ADMIN_PREFIX = "/__sandbox__"

VENDOR_MODULES: dict[str, ModuleType] = {
    "facebook": facebook,
    "pipedrive": pipedrive,
    "docusign": docusign,
    "asaas": asaas,
    "hostinger": hostinger,
    "whatsapp": whatsapp,
}
assert tuple(VENDOR_MODULES) == VENDORS, "the registry follows the journey order of VENDORS"


def vendor_modules() -> dict[str, ModuleType]:
    """The vendor emulators, in journey order (a copy of the static registry)."""
    return dict(VENDOR_MODULES)


def default_credentials() -> dict[str, dict[str, str]]:
    """What each vendor accepts when no credentials were configured, vendor -> name -> value."""
    return {vendor: dict(module.DEFAULT_CREDENTIALS) for vendor, module in vendor_modules().items()}


UnknownRouteRenderer = Callable[[Sandbox, str, str, int], Response]

ROUTING_DETAILS = {404: "Not Found", 405: "Method Not Allowed"}


def install_unknown_route_answers(
    app: FastAPI, sandbox: Sandbox, renderers: dict[str, UnknownRouteRenderer]
) -> None:
    """Answer the router's own 404/405 under `/<vendor>/` with that vendor's error envelope.

    Only routing misses are translated (an HTTPException whose detail is the bare status
    phrase, which is what Starlette raises when no route matches); the admin API and any
    handler that raises with its own detail keep FastAPI's answer.
    """

    async def answer_unknown_route(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        vendor, _, rest = path.lstrip("/").partition("/")
        renderer = renderers.get(vendor)
        if renderer is not None and ROUTING_DETAILS.get(exc.status_code) == exc.detail:
            return renderer(sandbox, request.method, "/" + rest, exc.status_code)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, answer_unknown_route)


def create_app(sandbox: Sandbox | None = None) -> FastAPI:
    """The whole sandbox for `sandbox` (a fresh seed-0 one when None), kept in `app.state.sandbox`.

    Interactive docs are off: the sandbox impersonates vendors, and `/docs` is not theirs.
    """
    sandbox = sandbox if sandbox is not None else Sandbox()
    app = FastAPI(title="leadflow sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox
    install_fault_handling(app, sandbox.faults)
    renderers: dict[str, UnknownRouteRenderer] = {}
    for vendor, module in vendor_modules().items():
        app.router.routes.append(VendorMount(f"/{vendor}", module.build_router(sandbox)))
        sandbox.default_credentials[vendor] = dict(module.DEFAULT_CREDENTIALS)
        renderer = getattr(module, "render_unknown_route", None)
        if renderer is not None:
            renderers[vendor] = renderer
    install_unknown_route_answers(app, sandbox, renderers)
    app.mount(ADMIN_PREFIX, LazyAdminApp(sandbox, admin.build_app))
    return app


class VendorMount(Mount):
    """One vendor's routes under `/<vendor>`: a request is matched against that vendor's routes
    alone.

    Why: with FastAPI's `include_router`, each request was matched against the routes of every
    vendor before its own, twice (once to find the route, once to run it). That was about a
    quarter of the sandbox's busy CPU in a bench_journey profile, where the sandbox bounds the
    billing stage; an Asaas request made in-process cost 360 µs of CPU that way and 195 µs
    mounted (the client's share included). Mounted, the prefix picks the vendor with one
    regular expression. The vendor's base URL itself (`/asaas`, no slash) is matched too, so it is
    answered with the vendor's own 404 as before, not redirected to `/asaas/`.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and get_route_path(scope) == self.path:
            return super().matches({**scope, "path": scope["path"] + "/"})
        return super().matches(scope)


class LazyAdminApp:
    """The admin API as an ASGI app that is built on its first request.

    Building FastAPI routes is costly (each body model's schema is generated), and the admin
    API with every vendor's admin routes is half the cost of `create_app`; most in-process
    users (tests, benchmarks) never call it. Mounted, it keeps FastAPI's own answers
    (`{"detail": ...}`), which suit an operator's API that impersonates no vendor.
    """

    def __init__(self, sandbox: Sandbox, build_app: Callable[[Sandbox], ASGIApp]) -> None:
        self._sandbox = sandbox
        self._build_app = build_app
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _admin_app(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                self._app = self._build_app(self._sandbox)
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app if self._app is not None else self._admin_app()
        await app(scope, receive, send)
