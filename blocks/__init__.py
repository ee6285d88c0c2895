"""Vendor credentials as Prefect Blocks, the clients they build, and the shared HTTP policy.

Where it sits: between the tasks and the vendors. Each vendor module holds a credentials Block
(SecretStr fields, base URL) whose `get_client()` builds that vendor's async client; the clients
share one HTTP policy (blocks/http.py) and one error tree (blocks/errors.py). Everything a task
needs is importable from here, and `prefect block register -m blocks` registers every Block type
(Prefect scans this module's namespace for Block classes).

The DocuSign, Asaas and Hostinger modules are written separately; each one that exists is
imported by name, and its Blocks and clients (the classes in its own `__all__`) join `__all__`.
"""

from __future__ import annotations

import importlib
import inspect

from blocks.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from blocks.facebook import FacebookLeadAdsClient, FacebookLeadAdsCredentials
from blocks.http import HttpPolicy, RateLimit, VendorHTTP
from blocks.pipedrive import PipedriveClient, PipedriveCredentials
from blocks.whatsapp import WhatsAppClient, WhatsAppCredentials

__all__ = [
    "AuthenticationError",
    "FacebookLeadAdsClient",
    "FacebookLeadAdsCredentials",
    "HttpPolicy",
    "NotFoundError",
    "PermanentError",
    "PipedriveClient",
    "PipedriveCredentials",
    "RateLimit",
    "RateLimitedError",
    "TransientError",
    "UnknownOutcomeError",
    "VendorError",
    "VendorHTTP",
    "WhatsAppClient",
    "WhatsAppCredentials",
]

#: every vendor module, in journey order (facebook → pipedrive → docusign → asaas → hostinger
#: → whatsapp); `leadflow blocks` and the convention test walk this list
VENDOR_MODULES: tuple[str, ...] = (
    "facebook",
    "pipedrive",
    "docusign",
    "asaas",
    "hostinger",
    "whatsapp",
)
_SEPARATELY_WRITTEN: tuple[str, ...] = ("docusign", "asaas", "hostinger")


def _export_separately_written() -> None:
    """Re-export the public classes (Blocks and clients) of the DocuSign/Asaas/Hostinger modules."""
    for name in _SEPARATELY_WRITTEN:
        qualified = f"blocks.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:
                raise  # the module exists but one of its imports is broken: say so
            continue
        for attribute in getattr(module, "__all__", ()):
            value = getattr(module, attribute)
            if inspect.isclass(value) and (
                attribute.endswith(("Credentials", "Client")) or _is_block(value)
            ):
                globals()[attribute] = value
                if attribute not in __all__:
                    __all__.append(attribute)


def _is_block(value: type) -> bool:
    from prefect.blocks.core import Block

    return issubclass(value, Block)


_export_separately_written()
