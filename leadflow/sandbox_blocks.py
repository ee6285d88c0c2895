"""Credentials Blocks pointing at leadflow's sandbox, for the demo, the tests and `blocks init`.

Where it sits: the production Blocks (blocks/<vendor>.py) know nothing of the sandbox. This
module reads what a running sandbox offers — its admin API, `<root>/__sandbox__/`, lists each
vendor's base URL and the credentials it accepts — and fills each vendor's Block with them, so
the demo, the tests and `leadflow blocks init --sandbox` build the same Blocks the same way::

    from leadflow.sandbox_blocks import sandbox_credentials

    credentials = sandbox_credentials("http://127.0.0.1:8765")
    async with credentials["asaas"].get_client() as asaas:
        ...

`SANDBOX_BLOCKS` is the static registry, vendor -> how its Block is built: every vendor of
blocks.VENDOR_MODULES has one (tests/blocks/test_cli_blocks.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from blocks import (
    AsaasCredentials,
    DocuSignCredentials,
    FacebookLeadAdsCredentials,
    HostingerCredentials,
    PipedriveCredentials,
    WhatsAppCredentials,
)
from blocks.credentials import VendorCredentials

__all__ = [
    "SANDBOX_BLOCKS",
    "SANDBOX_BUDGETS",
    "sandbox_block",
    "sandbox_credentials",
    "sandbox_credentials_from",
    "sandbox_overview",
]

Credentials = Mapping[str, str]


def _secret(credentials: Credentials, name: str) -> SecretStr | None:
    value = credentials.get(name)
    return SecretStr(value) if value else None


def _facebook(base_url: str, credentials: Credentials) -> FacebookLeadAdsCredentials:
    return FacebookLeadAdsCredentials(
        base_url=base_url,
        page_id=credentials["page_id"],
        page_access_token=SecretStr(credentials["page_access_token"]),
        app_secret=_secret(credentials, "app_secret"),
        verify_token=_secret(credentials, "verify_token"),
    )


def _pipedrive(base_url: str, credentials: Credentials) -> PipedriveCredentials:
    # the API token: the sandbox has no OAuth token endpoint to refresh against
    return PipedriveCredentials(base_url=base_url, api_token=SecretStr(credentials["api_token"]))


def _docusign(base_url: str, credentials: Credentials) -> DocuSignCredentials:
    # the sandbox serves the OAuth server and the REST API under one URL, and accepts its own
    # host as the assertion's audience
    return DocuSignCredentials(
        base_url=base_url,
        auth_server=base_url,
        integration_key=credentials["integration_key"],
        user_id=credentials["user_id"],
        account_id=credentials["account_id"],
        private_key=SecretStr(credentials["private_key_pem"]),
        connect_hmac_key=_secret(credentials, "connect_hmac_key"),
        template_id=credentials.get("template_id"),
    )


def _asaas(base_url: str, credentials: Credentials) -> AsaasCredentials:
    return AsaasCredentials(
        base_url=base_url,
        api_key=SecretStr(credentials["api_key"]),
        webhook_auth_token=_secret(credentials, "webhook_auth_token"),
    )


def _hostinger(base_url: str, credentials: Credentials) -> HostingerCredentials:
    # purchases stay off: the demo shows that activation never buys anything
    return HostingerCredentials(base_url=base_url, api_token=SecretStr(credentials["api_token"]))


def _whatsapp(base_url: str, credentials: Credentials) -> WhatsAppCredentials:
    return WhatsAppCredentials(
        base_url=base_url,
        access_token=SecretStr(credentials["access_token"]),
        phone_number_id=credentials["phone_number_id"],
        business_account_id=credentials.get("waba_id"),
        app_secret=_secret(credentials, "app_secret"),
        verify_token=_secret(credentials, "verify_token"),
    )


#: vendor -> its Block filled from the sandbox's base URL and credentials, in journey order
SANDBOX_BLOCKS: dict[str, Callable[[str, Credentials], VendorCredentials]] = {
    "facebook": _facebook,
    "pipedrive": _pipedrive,
    "docusign": _docusign,
    "asaas": _asaas,
    "hostinger": _hostinger,
    "whatsapp": _whatsapp,
}


#: The sandbox's own limits, far above a small real account's: a Block keeps the vendor's
#: published small-plan limits by default (Pipedrive 20 per 2 s, Facebook 200 calls an hour,
#: DocuSign 3,000 an hour, Hostinger 60 a minute), which would make the demo and the tests wait
#: on rate limits the sandbox does not have.
SANDBOX_BUDGETS: dict[str, dict[str, int]] = {
    "facebook": {"calls_per_hour": 1_000_000},
    "pipedrive": {"burst_limit": 2_000},
    "docusign": {"hourly_limit": 1_000_000, "burst": 10_000},
    "hostinger": {"requests_per_minute": 60_000, "burst": 1_000},
}


def sandbox_block(vendor: str, base_url: str, credentials: Credentials) -> VendorCredentials:
    """One vendor's Block for the sandbox, with the sandbox's own limits (KeyError for a vendor
    leadflow has no Block for)."""
    block = SANDBOX_BLOCKS[vendor](base_url, credentials)
    for name, value in SANDBOX_BUDGETS.get(vendor, {}).items():
        if name in type(block).model_fields:
            setattr(block, name, value)
    return block


def sandbox_overview(base_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """What the sandbox at `base_url` (its root, or its `/__sandbox__` admin URL) offers."""
    root = base_url.rstrip("/")
    if not root.endswith("/__sandbox__"):
        root += "/__sandbox__"
    response = httpx.get(root + "/", timeout=timeout)
    response.raise_for_status()
    overview = response.json()
    if not isinstance(overview, dict) or not isinstance(overview.get("vendors"), dict):
        raise ValueError("the sandbox's admin API answered without a vendors list")
    return overview


def sandbox_credentials_from(overview: Mapping[str, Any]) -> dict[str, VendorCredentials]:
    """vendor -> Block for every vendor the overview lists that leadflow has a Block for."""
    offered: Mapping[str, Any] = overview["vendors"]
    return {
        vendor: sandbox_block(vendor, offered[vendor]["base_url"], offered[vendor]["credentials"])
        for vendor in SANDBOX_BLOCKS
        if vendor in offered
    }


def sandbox_credentials(base_url: str) -> dict[str, VendorCredentials]:
    """vendor name -> credentials Block, for the sandbox running at `base_url`."""
    return sandbox_credentials_from(sandbox_overview(base_url))
