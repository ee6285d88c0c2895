"""The Pipedrive client against the in-process sandbox, with and without injected faults."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from blocks.errors import AuthenticationError, TransientError, UnknownOutcomeError
from blocks.http import HttpPolicy
from blocks.pipedrive import PipedriveClient, PipedriveCredentials
from blocks.pipedrive_models import (
    ContactEntry,
    DealCreate,
    DealFieldCreate,
    DealUpdate,
    NoteCreate,
    PersonCreate,
)
from tests.blocks.conftest import SandboxAdmin


@pytest.fixture
def credentials(sandbox_admin: SandboxAdmin) -> PipedriveCredentials:
    accepted = sandbox_admin.credentials("pipedrive")
    return PipedriveCredentials(
        base_url=sandbox_admin.base_urls["pipedrive"], api_token=accepted["api_token"]
    )


@pytest.fixture
async def pipedrive(credentials: PipedriveCredentials, policy: HttpPolicy) -> PipedriveClient:
    async with credentials.get_client(policy=policy) as client:
        yield client


@pytest.fixture
async def lead_field(pipedrive: PipedriveClient) -> str:
    field = await pipedrive.create_deal_field(
        DealFieldCreate(name=f"leadflow lead id {uuid.uuid4().hex[:6]}", field_type="varchar")
    )
    return field.key


def unique_email() -> str:
    return f"cliente.{uuid.uuid4().hex[:10]}@example.com"


async def test_the_whole_pipedrive_journey_runs_against_the_sandbox(
    pipedrive: PipedriveClient, lead_field: str
) -> None:
    email = unique_email()
    lead_id = f"lead-{uuid.uuid4().hex}"
    assert lead_field in {f.key for f in await pipedrive.list_deal_fields()}

    assert (await pipedrive.search_persons(email, field="email")).items == []
    person = await pipedrive.create_person(
        PersonCreate(
            name="Maria Souza",
            emails=[ContactEntry(value=email, primary=True)],
            phones=[ContactEntry(value="+5511987654321", primary=True, label="mobile")],
        )
    )
    found = await pipedrive.search_persons(email, field="email")
    assert [match.id for match in found.items] == [person.id]

    deal = await pipedrive.create_deal(
        DealCreate(
            title="Site — Maria Souza",
            person_id=person.id,
            value=1990.0,
            currency="BRL",
            custom_fields={lead_field: lead_id},
        )
    )
    by_lead = await pipedrive.search_deals(lead_id)
    assert [match.id for match in by_lead.items] == [deal.id]

    won = await pipedrive.update_deal(deal.id, DealUpdate(status="won"))
    assert won.status == "won"
    assert (await pipedrive.get_deal(deal.id)).status == "won"

    note = await pipedrive.create_note(
        NoteCreate(content=f"[leadflow:{lead_id}] ok", deal_id=deal.id)
    )
    notes = await pipedrive.list_notes(deal_id=deal.id)
    assert [n.id for n in notes.items] == [note.id]


async def test_a_wrong_token_is_an_authentication_error_at_the_sandbox(
    sandbox_admin: SandboxAdmin, policy: HttpPolicy
) -> None:
    credentials = PipedriveCredentials(
        base_url=sandbox_admin.base_urls["pipedrive"], api_token="not-the-token"
    )
    async with credentials.get_client(policy=policy) as client:
        with pytest.raises(AuthenticationError):
            await client.search_persons(unique_email())


async def test_server_errors_on_reads_are_retried_until_the_sandbox_recovers(
    sandbox_admin: SandboxAdmin, pipedrive: PipedriveClient
) -> None:
    sandbox_admin.fault("pipedrive", "GET /api/v2/persons/search", error_rate=1.0)
    with pytest.raises(TransientError) as caught:
        await pipedrive.search_persons(unique_email())
    assert caught.value.status in {500, 502, 503}
    sandbox_admin.clear_faults("pipedrive")
    assert (await pipedrive.search_persons(unique_email())).items == []


async def test_throttled_creates_are_retried_and_create_exactly_one_deal_each(
    sandbox_admin: SandboxAdmin, credentials: PipedriveCredentials, policy: HttpPolicy
) -> None:
    """Six in ten creates are refused with 429; 30 attempts make a failure p = 0.6**30."""
    before = sandbox_admin.counters("pipedrive").get("deal", 0)
    sandbox_admin.fault("pipedrive", "POST /api/v2/deals", throttle_rate=0.6)
    async with credentials.get_client(policy=replace(policy, max_attempts=30)) as client:
        for _ in range(5):
            await client.create_deal(DealCreate(title="Site"))
    assert sandbox_admin.counters("pipedrive").get("deal", 0) == before + 5


async def test_a_lost_answer_on_create_is_an_unknown_outcome_and_the_deal_is_found_by_lookup(
    sandbox_admin: SandboxAdmin, pipedrive: PipedriveClient, lead_field: str
) -> None:
    lead_id = f"lead-{uuid.uuid4().hex}"
    before = sandbox_admin.counters("pipedrive").get("deal", 0)
    sandbox_admin.fault("pipedrive", "POST /api/v2/deals", lost_answer_rate=1.0)
    with pytest.raises(UnknownOutcomeError):
        await pipedrive.create_deal(DealCreate(title="Site", custom_fields={lead_field: lead_id}))
    sandbox_admin.clear_faults("pipedrive")
    # the client did not retry blindly: exactly one deal exists, and the look-up finds it
    assert sandbox_admin.counters("pipedrive").get("deal", 0) == before + 1
    assert len((await pipedrive.search_deals(lead_id)).items) == 1
