"""The sandbox as one ASGI app: each vendor's emulator under `/<vendor>`, admin at `/__sandbox__`.

This is what `leadflow sandbox serve` and `sandbox.server.running_sandbox` serve. A vendor's base
URL is `http://host:port/<vendor>`; below it the vendor's own path layout (`/asaas/v3/payments`,
`/facebook/v23.0/{form-id}/leads`...), so a leadflow client differs between the sandbox and the
real vendor only by its base URL. The admin API lives outside every vendor's surface.

Vendor modules are discovered by name: one still being written (absent) is skipped, so the app
always starts with whatever emulators exist.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fastapi import FastAPI

from sandbox.core import VENDORS, Sandbox
from sandbox.faults import install_fault_handling

ADMIN_PREFIX = "/__sandbox__"


def vendor_modules() -> dict[str, ModuleType]:
    """The vendor emulators that exist, in journey order; a missing module is not an error."""
    modules: dict[str, ModuleType] = {}
    for vendor in VENDORS:
        name = f"sandbox.vendors.{vendor}"
        try:
            modules[vendor] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # the module exists but one of its own imports is broken: say so
    return modules


def default_credentials() -> dict[str, dict[str, str]]:
    """What each vendor accepts when no credentials were configured, vendor -> name -> value."""
    return {vendor: dict(module.DEFAULT_CREDENTIALS) for vendor, module in vendor_modules().items()}


def create_app(sandbox: Sandbox | None = None) -> FastAPI:
    """The whole sandbox for `sandbox` (a fresh seed-0 one when None), kept in `app.state.sandbox`.

    Interactive docs are off: the sandbox impersonates vendors, and `/docs` is not theirs.
    """
    sandbox = sandbox if sandbox is not None else Sandbox()
    app = FastAPI(title="leadflow sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox
    install_fault_handling(app, sandbox.faults)
    for vendor, module in vendor_modules().items():
        app.include_router(module.build_router(sandbox), prefix=f"/{vendor}")
        sandbox.default_credentials[vendor] = dict(module.DEFAULT_CREDENTIALS)
    try:
        admin = importlib.import_module("sandbox.admin")
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox.admin":
            raise
    else:
        app.include_router(admin.build_router(sandbox), prefix=ADMIN_PREFIX)
    return app
