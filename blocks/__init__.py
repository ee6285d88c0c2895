"""Vendor credentials as Prefect Blocks, the clients they build, and the shared HTTP policy.

Where it sits: between the tasks and the vendors, at every step of the journey — Facebook Lead
Ads (the lead) → Pipedrive (person and deal) → DocuSign (the contract) → Asaas (customer and PIX
charge) → Hostinger (the activation) → WhatsApp (the PIX code and the welcome). Each vendor module
holds a credentials Block (SecretStr fields, a base URL) whose `get_client()` builds that vendor's
async client; the clients share one HTTP policy (blocks/http.py) and one error tree
(blocks/errors.py). A task loads the Block by name and uses the client::

    from blocks import PipedriveCredentials, UnknownOutcomeError

    credentials = await PipedriveCredentials.load("default")
    async with credentials.get_client() as pipedrive:
        page = await pipedrive.search_persons("maria@example.com", field="email")

Everything a task needs is importable from here, and `prefect block register -m blocks`
registers every Block type (Prefect scans this module's namespace for Block classes).
`__all__` is the package's public face: tests/blocks/test_block_conventions.py pins it.
"""

from __future__ import annotations

from blocks.asaas import AsaasClient, AsaasCredentials
from blocks.docusign import DocuSignClient, DocuSignCredentials
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
from blocks.hostinger import HostingerClient, HostingerCredentials
from blocks.http import HttpPolicy, RateLimit, VendorHTTP
from blocks.pipedrive import PipedriveClient, PipedriveCredentials
from blocks.whatsapp import WhatsAppClient, WhatsAppCredentials

__all__ = [
    "VENDOR_MODULES",
    "AsaasClient",
    "AsaasCredentials",
    "AuthenticationError",
    "DocuSignClient",
    "DocuSignCredentials",
    "FacebookLeadAdsClient",
    "FacebookLeadAdsCredentials",
    "HostingerClient",
    "HostingerCredentials",
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

#: every vendor module, in journey order; `leadflow blocks` and the convention tests walk it
VENDOR_MODULES: tuple[str, ...] = (
    "facebook",
    "pipedrive",
    "docusign",
    "asaas",
    "hostinger",
    "whatsapp",
)
