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
        person = await pipedrive.find_person(email="maria@example.com")

Everything a task needs is importable from here — each vendor's credentials Block, its client,
the models the client takes and returns, and the error tree — and `prefect block register -m
blocks` registers every Block type (Prefect scans this module's namespace for Block classes).
The plumbing (`VendorHTTP`, `HttpPolicy`, `RateLimit`, `RollingWindow`, `ConcurrencyCap`) stays
importable from blocks.http for tests and new clients, outside the public face. `__all__` is
that face: tests/blocks/test_block_conventions.py pins it.
"""

from __future__ import annotations

from blocks.asaas import (
    PAID_STATUSES,
    AsaasClient,
    AsaasCredentials,
    AsaasCustomer,
    AsaasPayment,
    AsaasWebhook,
    CustomerPage,
    NewAsaasWebhook,
    NewCustomer,
    NewPixCharge,
    PaymentPage,
    PixQrCode,
)
from blocks.docusign import (
    LEAD_ID_FIELD,
    ConnectConfiguration,
    DocuSignClient,
    DocuSignCredentials,
    Envelope,
    EnvelopeFormData,
    EnvelopeFromTemplate,
    EnvelopesPage,
    EnvelopeSummary,
    FormDataItem,
    NewConnectConfiguration,
    TemplateRole,
    TextCustomField,
)
from blocks.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)
from blocks.facebook import (
    FacebookLeadAdsClient,
    FacebookLeadAdsCredentials,
    FieldAnswer,
    Lead,
    LeadForm,
)
from blocks.hostinger import (
    BillingOrder,
    CatalogCategory,
    CatalogItem,
    CatalogPrice,
    CreatedWebsite,
    Datacenter,
    HostingerClient,
    HostingerCredentials,
    HostingOrder,
    HostingOrdersPage,
    NewWebsite,
    PurchasesDisabledError,
    Subscription,
    Website,
    WebsitesPage,
)
from blocks.pipedrive import (
    PipedriveClient,
    PipedriveCredentials,
)
from blocks.pipedrive_models import (
    ContactEntry,
    Deal,
    DealCreate,
    DealField,
    DealFieldCreate,
    DealMatch,
    DealUpdate,
    Note,
    NoteCreate,
    Page,
    Person,
    PersonCreate,
    PersonMatch,
    PersonUpdate,
    Webhook,
    WebhookCreate,
)
from blocks.whatsapp import (
    CurrencyParameter,
    PhoneNumber,
    SendResult,
    TemplateComponent,
    TemplateParameter,
    WhatsAppClient,
    WhatsAppCredentials,
)

__all__ = [
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

#: every vendor module, in journey order; `leadflow blocks` and the convention tests walk it
VENDOR_MODULES: tuple[str, ...] = (
    "facebook",
    "pipedrive",
    "docusign",
    "asaas",
    "hostinger",
    "whatsapp",
)
