"""Every credentials Block in blocks/ — whoever wrote it — follows the same conventions.

STYLE.md (after prefect-aws): a secret lives only in a SecretStr field of a Block; the Block says
what it is for, shows how to `.load()` it, points at the vendor's production URL by default, and
builds its client with `get_client()`. One parametrised test per rule, over every Block found.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
import uuid

import pytest
from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import SecretStr

import blocks
from blocks.credentials import VendorCredentials
from blocks.http import VendorHTTP

SECRET_NAME = re.compile(r"(token|secret|password|passphrase|api_key|private_key)", re.IGNORECASE)


def _all_blocks() -> list[type[Block]]:
    found: list[type[Block]] = []
    for module_info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f"blocks.{module_info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(value, Block)
                and value.__module__ == module.__name__
                and not inspect.isabstract(value)
            ):
                found.append(value)
    return found


BLOCKS = _all_blocks()


def _ids(block: type[Block]) -> str:
    return block.__name__


def test_every_vendor_of_the_journey_has_a_block() -> None:
    modules = {block.__module__.removeprefix("blocks.") for block in BLOCKS}
    assert modules == set(blocks.VENDOR_MODULES)


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_secret_looking_fields_are_secret_str(block: type[Block]) -> None:
    for name, field in block.model_fields.items():
        if SECRET_NAME.search(name) and not name.endswith(("_url", "_name", "_at", "_id")):
            leaves = _leaf_types(field.annotation)
            # a number such as a token *budget* is no secret; text with such a name is one
            assert str not in leaves, f"{block.__name__}.{name} holds a secret as plain str"


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_prefect_stores_the_secrets_as_secret_fields(block: type[Block]) -> None:
    schema = block._to_block_schema(block_type_id=uuid.uuid4())
    secret_fields = set(schema.fields.get("secret_fields", []))
    declared = {
        name
        for name, field in block.model_fields.items()
        if SecretStr in _leaf_types(field.annotation)
    }
    assert declared, f"{block.__name__} holds no secret at all"
    assert declared <= secret_fields


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_block_describes_itself(block: type[Block]) -> None:
    assert "_block_type_name" in vars(block), "name the type; Prefect would guess from the class"
    description = block.get_description() or ""
    assert len(description) > 30


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_block_shows_how_to_load_it(block: type[Block]) -> None:
    example = block.get_code_example() or ""
    assert re.search(rf"{block.__name__}\.load\([\"'][\w-]+[\"']\)", example), example


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_block_points_at_the_vendors_production_url_by_default(block: type[Block]) -> None:
    base_url = block.model_fields.get("base_url")
    assert base_url is not None, "a base_url field lets the demo point the Block at the sandbox"
    assert str(base_url.default).startswith("https://")
    assert "127.0.0.1" not in str(base_url.default)
    assert "sandbox" not in str(base_url.default)


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_block_builds_its_client(block: type[Block]) -> None:
    factory = getattr(block, "get_client", None)
    assert callable(factory)
    returned = typing.get_type_hints(factory)["return"]
    assert inspect.isclass(returned)
    assert returned.__name__.endswith("Client")
    assert hasattr(returned, "aclose"), "the client owns a connection pool: it must close it"


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_block_is_exported_for_prefect_block_register(block: type[Block]) -> None:
    assert block.__name__ in blocks.__all__
    assert getattr(blocks, block.__name__) is block


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_every_block_is_a_prefect_credentials_block_on_the_shared_base(block: type[Block]) -> None:
    assert issubclass(block, CredentialsBlock)
    assert issubclass(block, VendorCredentials)
    assert "from_sandbox" not in vars(block), "sandbox Blocks are built by leadflow.sandbox_blocks"


@pytest.mark.parametrize("block", BLOCKS, ids=_ids)
def test_the_base_builds_the_client_under_the_accounts_one_shared_rate_limit(
    block: type[Block],
) -> None:
    from leadflow.sandbox_blocks import sandbox_block

    vendor = block.__module__.removeprefix("blocks.")
    credentials = SANDBOX_CREDENTIALS[vendor]
    first = sandbox_block(vendor, "https://vendor.test", credentials)
    second = sandbox_block(vendor, "https://vendor.test", credentials)
    assert isinstance(first, VendorCredentials)
    http_one, http_two = first.vendor_http(), second.vendor_http()
    assert isinstance(http_one, VendorHTTP)
    assert http_one.rate_limit is http_two.rate_limit is first.shared_rate_limit()
    assert http_one.vendor == vendor


@pytest.mark.parametrize(
    "client",
    [blocks.PipedriveClient, blocks.DocuSignClient, blocks.AsaasClient, blocks.HostingerClient],
    ids=lambda client: client.__name__,
)
def test_every_client_that_creates_looks_up_by_reference_with_the_same_name(client: type) -> None:
    assert inspect.iscoroutinefunction(client.find_by_reference)


def test_the_hostinger_client_does_not_poll() -> None:
    assert not hasattr(blocks.HostingerClient, "wait_until_enabled")


#: what each sandbox vendor's admin API lists (values are fakes: nothing is called)
SANDBOX_CREDENTIALS: dict[str, dict[str, str]] = {
    "facebook": {"page_id": "104857600000001", "page_access_token": "EAAfake"},
    "pipedrive": {"api_token": "fake-pipedrive-token"},
    "docusign": {
        "integration_key": "ik",
        "user_id": "uid",
        "account_id": "acc",
        "private_key_pem": "not a key",
    },
    "asaas": {"api_key": "$aact_hmlg_fake"},
    "hostinger": {"api_token": "fake-hostinger-token"},
    "whatsapp": {"phone_number_id": "106540352242922", "access_token": "EAAfake"},
}

#: the package's public face: changing it is an API change and must change this list.
#: What a task needs: each vendor's Block, client and models, and the error tree; the HTTP
#: plumbing (VendorHTTP, HttpPolicy, RateLimit...) lives in blocks.http, not here.
PUBLIC_NAMES = [
    "LEAD_ID_FIELD",
    "PAID_STATUSES",
    "VENDOR_MODULES",
    "AsaasClient",
    "AsaasCredentials",
    "AsaasCustomer",
    "AsaasPayment",
    "AsaasWebhook",
    "AuthenticationError",
    "BillingOrder",
    "CatalogCategory",
    "CatalogItem",
    "CatalogPrice",
    "ConnectConfiguration",
    "ContactEntry",
    "CreatedWebsite",
    "CurrencyParameter",
    "CustomerPage",
    "Datacenter",
    "Deal",
    "DealCreate",
    "DealField",
    "DealFieldCreate",
    "DealMatch",
    "DealUpdate",
    "DocuSignClient",
    "DocuSignCredentials",
    "Envelope",
    "EnvelopeFormData",
    "EnvelopeFromTemplate",
    "EnvelopeSummary",
    "EnvelopesPage",
    "FacebookLeadAdsClient",
    "FacebookLeadAdsCredentials",
    "FieldAnswer",
    "FormDataItem",
    "HostingOrder",
    "HostingOrdersPage",
    "HostingerClient",
    "HostingerCredentials",
    "Lead",
    "LeadForm",
    "NewAsaasWebhook",
    "NewConnectConfiguration",
    "NewCustomer",
    "NewPixCharge",
    "NewWebsite",
    "NotFoundError",
    "Note",
    "NoteCreate",
    "Page",
    "PaymentPage",
    "PermanentError",
    "Person",
    "PersonCreate",
    "PersonMatch",
    "PersonUpdate",
    "PhoneNumber",
    "PipedriveClient",
    "PipedriveCredentials",
    "PixQrCode",
    "PurchasesDisabledError",
    "RateLimitedError",
    "SendResult",
    "Subscription",
    "TemplateComponent",
    "TemplateParameter",
    "TemplateRole",
    "TextCustomField",
    "TransientError",
    "UnknownOutcomeError",
    "VendorError",
    "Webhook",
    "WebhookCreate",
    "Website",
    "WebsitesPage",
    "WhatsAppClient",
    "WhatsAppCredentials",
]


def test_the_plumbing_is_not_part_of_the_public_face() -> None:
    for plumbing in ("VendorHTTP", "HttpPolicy", "RateLimit", "RollingWindow", "ConcurrencyCap"):
        assert plumbing not in blocks.__all__
        assert not hasattr(blocks, plumbing)


def test_what_a_task_passes_and_gets_back_is_importable_from_blocks() -> None:
    for model in ("DealCreate", "NewPixCharge", "EnvelopeFromTemplate", "Person", "Deal"):
        assert model in blocks.__all__
    for model in ("AsaasCustomer", "AsaasPayment", "Envelope", "Website", "SendResult", "Lead"):
        assert model in blocks.__all__


def test_the_public_names_of_the_package_are_pinned() -> None:
    assert blocks.__all__ == PUBLIC_NAMES


def test_everything_public_in_the_package_is_in_all() -> None:
    """As httpx does: no public name is importable from `blocks` without being in `__all__`."""
    public = {
        name
        for name, value in vars(blocks).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(blocks.__all__)


def test_every_vendor_module_is_imported_by_the_package() -> None:
    for vendor in blocks.VENDOR_MODULES:
        module = importlib.import_module(f"blocks.{vendor}")
        exported = [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and value.__module__ == module.__name__
            and not inspect.isabstract(value)
            and (issubclass(value, Block) or value.__name__.endswith("Client"))
        ]
        assert exported, vendor
        for value in exported:
            assert getattr(blocks, value.__name__, None) is value, value.__name__


def _leaf_types(annotation: object) -> set[object]:
    args = typing.get_args(annotation)
    if not args:
        return {annotation}
    leaves: set[object] = set()
    for arg in args:
        leaves |= _leaf_types(arg)
    return leaves
