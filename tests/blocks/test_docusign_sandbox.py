"""The DocuSign client against the in-process sandbox: the JWT grant, envelopes, and faults.

The sandbox verifies the RS256 assertion with the public half of the key it hands out, so these
tests prove the grant is built the way DocuSign checks it. Faults come from the admin API and
the outage-ending sleep of tests/blocks/conftest.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from blocks.credentials import VendorCredentials
from blocks.docusign import (
    LEAD_ID_FIELD,
    AccessToken,
    DocuSignClient,
    DocuSignCredentials,
    EnvelopeFromTemplate,
    EnvelopeSummary,
    TemplateRole,
    TextCustomField,
    TokenStore,
    forget_access_tokens,
)
from blocks.errors import AuthenticationError, NotFoundError, UnknownOutcomeError
from tests.blocks.conftest import VendorSandbox, new_signing_key, saved_and_checked_by_the_cli

VENDOR = "docusign"
JOURNEY_FIELD = "leadflow_journey_id"


@pytest.fixture(autouse=True)
def no_cached_tokens() -> Iterator[None]:
    forget_access_tokens()
    yield
    forget_access_tokens()


@pytest.fixture
def docusign(vendor_client: Any) -> DocuSignClient:
    assert isinstance(vendor_client, DocuSignClient)
    return vendor_client


@pytest.fixture
def template_id(block: VendorCredentials) -> str:
    """The contract template the sandbox's account holds."""
    assert isinstance(block, DocuSignCredentials)
    assert block.template_id is not None
    return block.template_id


@pytest.fixture
async def sent(docusign: DocuSignClient, template_id: str) -> EnvelopeSummary:
    """A contract just sent for a new journey."""
    return await docusign.create_envelope_from_template(contract(template_id, journey_id()))


def contract(template_id: str, journey: str) -> EnvelopeFromTemplate:
    return EnvelopeFromTemplate(
        template_id=template_id,
        template_roles=[
            TemplateRole(role_name="Cliente", name="Maria Silva", email="maria@example.com")
        ],
        custom_fields=[TextCustomField(name=JOURNEY_FIELD, value=journey)],
        transaction_id=f"{journey}:contract",
        email_subject="Contrato de prestação de serviços",
    )


def journey_id() -> str:
    return f"j_{uuid.uuid4().hex[:12]}"


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def test_an_envelope_is_sent_and_found_by_custom_field_and_transaction_id(
    docusign: DocuSignClient, template_id: str
) -> None:
    journey = journey_id()
    created = await docusign.create_envelope_from_template(contract(template_id, journey))
    read = await docusign.get_envelope(created.envelope_id)
    by_field = await docusign.find_envelope_by_custom_field(
        JOURNEY_FIELD, journey, from_date=an_hour_ago()
    )
    by_transaction = await docusign.find_envelope_by_transaction_id(f"{journey}:contract")
    assert created.status == "sent"
    assert read.text_custom_fields[JOURNEY_FIELD] == journey
    assert by_field is not None
    assert by_field.envelope_id == created.envelope_id
    assert by_transaction is not None
    assert by_transaction.envelope_id == created.envelope_id
    assert docusign.tokens.minted == 1


async def test_an_unknown_journey_finds_no_envelope(docusign: DocuSignClient) -> None:
    found = await docusign.find_envelope_by_custom_field(
        JOURNEY_FIELD, journey_id(), from_date=an_hour_ago()
    )
    assert found is None


async def test_a_token_the_api_refuses_is_replaced_and_the_call_succeeds(
    block: DocuSignCredentials, sandbox: VendorSandbox
) -> None:
    store = TokenStore()
    store.replace(AccessToken(value="revoked-token-0123456789", expires_at=4_000_000_000.0))
    async with block.get_client(
        policy=sandbox.policy(), rate_limit=sandbox.rate_limit(), token_store=store
    ) as client:
        with pytest.raises(NotFoundError):
            await client.get_envelope(str(uuid.uuid4()))
        assert client.tokens.minted == 1
    current = store.current()
    assert current is not None
    assert current.value != "revoked-token-0123456789"


async def test_a_key_docusign_does_not_know_is_refused_as_authentication_error(
    block: DocuSignCredentials, sandbox: VendorSandbox
) -> None:
    pem, _ = new_signing_key()
    values = {name: getattr(block, name) for name in DocuSignCredentials.model_fields}
    impostor = DocuSignCredentials(**{**values, "private_key": pem})
    async with impostor.get_client(policy=sandbox.policy(), token_store=TokenStore()) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.get_envelope(str(uuid.uuid4()))
    assert raised.value.code == "invalid_grant"


async def test_a_lost_create_answer_is_unknown_and_the_transaction_id_finds_the_envelope(
    docusign: DocuSignClient, template_id: str, sandbox: VendorSandbox
) -> None:
    journey = journey_id()
    await docusign.tokens.access_token()  # the grant is not what this test breaks
    await sandbox.fault("POST /restapi/v2.1/accounts/{account_id}/envelopes", lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await docusign.create_envelope_from_template(contract(template_id, journey))
    await sandbox.clear()
    found = await docusign.find_envelope_by_transaction_id(f"{journey}:contract")
    assert found is not None
    assert found.status == "sent"


async def test_a_burst_429_on_create_is_retried_and_sends_one_envelope(
    docusign: DocuSignClient, template_id: str, sandbox: VendorSandbox
) -> None:
    journey = journey_id()
    await sandbox.fault(
        "POST /restapi/v2.1/accounts/{account_id}/envelopes",
        throttle_rate=1.0,
        retry_after_seconds=2,
    )
    sandbox.outage_lasts = 1
    await docusign.create_envelope_from_template(contract(template_id, journey))
    assert 2.0 in sandbox.waits
    page = await docusign.list_envelopes(
        from_date=an_hour_ago(), custom_field=(JOURNEY_FIELD, journey)
    )
    assert page.total_set_size == 1


async def test_an_envelope_read_is_retried_through_a_server_error(
    docusign: DocuSignClient, sent: EnvelopeSummary, sandbox: VendorSandbox
) -> None:
    await sandbox.fault(
        "GET /restapi/v2.1/accounts/{account_id}/envelopes/{envelope_id}",
        error_rate=1.0,
        error_statuses=[500],
    )
    sandbox.outage_lasts = 2
    read = await docusign.get_envelope(sent.envelope_id)
    assert read.envelope_id == sent.envelope_id
    assert len(sandbox.waits) >= 2


async def test_check_access_lists_the_days_envelopes(docusign: DocuSignClient) -> None:
    assert re.fullmatch(
        r"\d+ envelope\(s\) changed in the last 24 h", await docusign.check_access()
    )


def test_the_cli_saves_the_block_with_its_pem_key_and_checks_it(
    prefect_server: None, sandbox_urls: dict[str, str]
) -> None:
    root = sandbox_urls[VENDOR].rsplit("/", 1)[0]
    accepted = httpx.get(f"{root}/__sandbox__/").json()["vendors"][VENDOR]["credentials"]
    loaded, checked = saved_and_checked_by_the_cli(sandbox_urls, VENDOR, DocuSignCredentials)
    assert "changed in the last 24 h" in checked
    assert loaded.private_key.get_secret_value() == accepted["private_key_pem"]
    assert loaded.auth_server == sandbox_urls[VENDOR]


async def test_a_sent_envelope_can_be_voided_with_a_reason(
    docusign: DocuSignClient, sent: EnvelopeSummary
) -> None:
    await docusign.void_envelope(sent.envelope_id, "Negócio perdido")
    voided = await docusign.get_envelope(sent.envelope_id)
    assert voided.status == "voided"
    assert voided.voided_reason == "Negócio perdido"
    assert voided.is_final


async def test_voiding_an_envelope_a_second_time_succeeds(
    docusign: DocuSignClient, sent: EnvelopeSummary
) -> None:
    await docusign.void_envelope(sent.envelope_id, "Negócio perdido")
    await docusign.void_envelope(sent.envelope_id, "Negócio perdido")  # a repeated attempt
    assert (await docusign.get_envelope(sent.envelope_id)).status == "voided"


async def test_a_contract_with_a_prefilled_tab_is_found_by_lead_id_and_its_form_data_read(
    docusign: DocuSignClient, template_id: str
) -> None:
    """What the contract step does: prefill the signer's CPF, tag the lead id, read it back."""
    lead_id = str(uuid.uuid4().int % 10**9)
    created = await docusign.create_envelope_from_template(
        EnvelopeFromTemplate(
            template_id=template_id,
            template_roles=[
                TemplateRole(
                    role_name="Cliente",
                    name="Maria Silva",
                    email="maria@example.com",
                    text_tabs={"cpf": "529.982.247-25"},
                )
            ],
            custom_fields=[TextCustomField(name=LEAD_ID_FIELD, value=lead_id)],
        )
    )
    found = await docusign.find_by_reference(lead_id, since=an_hour_ago())
    assert found is not None
    assert found.envelope_id == created.envelope_id
    assert await docusign.find_by_reference(lead_id + "0", since=an_hour_ago()) is None
    form = await docusign.get_envelope_form_data(created.envelope_id)
    assert form.values()["cpf"] == "529.982.247-25"
