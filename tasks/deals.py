"""Pipedrive: the qualified lead becomes a person and a deal, and the deal's fate moves the journey.

`upsert_person_and_deal` (qualified → deal_open): the person is found by e-mail, then by phone,
before one is created (a client who filled two forms is one person); the deal carries the lead id
in a custom field, found by name or created once, so a rerun finds the deal instead of opening a
second one. `check_deals` (deal_open → deal_won | deal_lost): the reconciler's read of each
open deal, for journeys whose webhook was lost.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from prefect import task

from blocks.pipedrive_models import (
    ContactEntry,
    Deal,
    DealCreate,
    DealField,
    DealFieldCreate,
    Person,
    PersonCreate,
    PersonMatch,
)
from ledger import ClaimedJourney, JourneyState, LeadView
from tasks.effects import EffectResult, Recorded, UnknownOutcome, VendorWrite, effect_key
from tasks.journey import (
    Move,
    StepContext,
    apply_moves,
    each_journey,
    each_lead,
    journey_task,
    move_from_effect,
)

__all__ = ["check_deals", "deal_id_of", "lead_id_field_key", "upsert_person_and_deal"]

PERSON = "pipedrive.person"
DEAL = "pipedrive.deal"


def person_key(lead_id: int) -> str:
    return effect_key(lead_id, PERSON)


class FieldUnavailable(Exception):  # noqa: N818 - reads as the business fact
    """The lead-id deal field could not be found or made; `permanent` if the vendor refused."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _field_cache_key(_: object, parameters: dict[str, Any]) -> str:
    """Per ledger, Block set and field name: the ledger's effect row is the field's record, so
    a new ledger (a new company, a reset sandbox) never reads another one's cached key."""
    ledger_url = parameters["context"].ledger.url
    digest = hashlib.sha256(ledger_url.encode()).hexdigest()[:16]
    return f"pipedrive-lead-id-field:{digest}:{parameters['blocks']}:{parameters['name']}"


@task(
    name="lead-id-field",
    tags=["pipedrive"],
    cache_key_fn=_field_cache_key,
    cache_expiration=timedelta(minutes=10),
    persist_result=True,
)
async def lead_id_field_key(context: StepContext, blocks: str, name: str) -> str:
    """The 40-hex key of the deal custom field holding leadflow's lead id: found by its name, or
    created once (an effect, so two workers starting together still make one field). An
    idempotent read, so Prefect caches it for ten minutes (per ledger, Blocks and name)."""
    pipedrive = await context.client("pipedrive")
    write = VendorWrite[DealField](
        key=f"pipedrive.deal_field:{name}",
        vendor="pipedrive",
        operation="create_deal_field",
        lead_id=None,  # a setup object, no lead's
        create=lambda: pipedrive.create_deal_field(
            DealFieldCreate(name=name, field_type="varchar")
        ),
        object_id=lambda field: field.key,
        find=lambda: pipedrive.find_deal_field(name),
        upsert=True,
    )
    effected = await context.perform(write)
    if not effected.ok or effected.vendor_object_id is None:
        permanent = effected.result is EffectResult.PERMANENT
        raise FieldUnavailable(
            f"Pipedrive deal field {name!r}: {effected.error}", permanent=permanent
        )
    return effected.vendor_object_id


def _person(lead: LeadView) -> PersonCreate:
    normalized = lead.normalized
    assert normalized is not None
    emails = [ContactEntry(value=normalized.email, primary=True)] if normalized.email else None
    phones = (
        [ContactEntry(value=normalized.phone, primary=True, label="mobile")]
        if normalized.phone
        else None
    )
    return PersonCreate(name=normalized.full_name, emails=emails, phones=phones)


def form_of(lead: LeadView) -> str | None:
    """The Lead Ads form a lead came from (ad-hoc leads have none)."""
    form_id = lead.raw.get("form_id") if isinstance(lead.raw, dict) else None
    return str(form_id) if form_id is not None else None


async def _upsert_one(context: StepContext, pipedrive: Any, field_key: str, lead: LeadView) -> Move:
    if lead.normalized is None:
        return Move.dead_letter(lead.lead_id, "the lead has no normalised data: gate it first")
    form = context.business.form(form_of(lead))
    person = await context.perform(
        VendorWrite[Person | PersonMatch].for_lead(
            lead,
            PERSON,
            "upsert_person",
            create=lambda: pipedrive.create_person(_person(lead)),
            object_id=lambda p: str(p.id),
            # a client who filled two forms is one person: e-mail first, then phone
            find=lambda: pipedrive.find_person(
                email=lead.normalized.email if lead.normalized else None,
                phone=lead.normalized.phone if lead.normalized else None,
            ),
            upsert=True,
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, person, "Pipedrive person")) is not None:
        return failed
    assert person.vendor_object_id is not None
    title = form.deal_title.format(full_name=lead.normalized.full_name, form=form.name)
    deal_body = DealCreate(
        title=title[:255],
        person_id=int(person.vendor_object_id),
        value=float(form.value) if form.value is not None else None,
        currency=form.currency,
        pipeline_id=form.pipeline_id,
        stage_id=form.stage_id,
        custom_fields={field_key: str(lead.lead_id)},
    )
    deal = await context.perform(
        VendorWrite[Deal].for_lead(
            lead,
            DEAL,
            "create_deal",
            create=lambda: pipedrive.create_deal(deal_body),
            object_id=lambda d: str(d.id),
            find=lambda: pipedrive.find_by_reference(str(lead.lead_id), field_key=field_key),
            unknown_outcome=UnknownOutcome.LOOK_UP,
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, deal, "Pipedrive deal")) is not None:
        return failed
    return Move.advance(
        lead.lead_id,
        JourneyState.DEAL_OPEN,
        f"Pipedrive person {person.vendor_object_id}, deal {deal.vendor_object_id}",
    )


@journey_task("upsert-person-and-deal", "pipedrive")
async def upsert_person_and_deal(
    context: StepContext, journeys: list[ClaimedJourney]
) -> list[Move]:
    """qualified → deal_open, for a batch: a Pipedrive person (upsert) and a deal per lead."""
    if not journeys:
        return []
    pipedrive = await context.client("pipedrive")
    name = context.business.pipedrive.lead_id_field
    try:
        field_key = await lead_id_field_key(context, context.business.blocks, name)
    except FieldUnavailable as error:  # every deal needs the field: the whole batch waits
        moves = [
            Move.dead_letter(j.lead_id, str(error))
            if error.permanent
            else Move.retry(j.lead_id, str(error), context.backoff(1))
            for j in journeys
        ]
        return await apply_moves(context, journeys, moves)
    return await each_lead(
        context,
        journeys,
        lambda lead, _recorded: _upsert_one(context, pipedrive, field_key, lead),
        "pipedrive",
    )


def deal_id_of(recorded: Recorded) -> int | None:
    """The lead's Pipedrive deal id, as the ledger recorded it."""
    deal_id = recorded.vendor_id(DEAL)
    return int(deal_id) if deal_id else None


async def _check_one(
    context: StepContext, pipedrive: Any, journey: ClaimedJourney, recorded: Recorded
) -> Move:
    recheck = context.business.timing.waiting_recheck_seconds
    deal_id = deal_id_of(recorded)
    if deal_id is None:
        return Move.dead_letter(journey.lead_id, "deal_open without a recorded Pipedrive deal")
    deal = await pipedrive.get_deal(deal_id)
    if deal.status == "won":
        return Move.advance(journey.lead_id, JourneyState.DEAL_WON, f"deal {deal_id} won")
    if deal.status == "lost":
        reason = f"deal {deal_id} lost" + (f": {deal.lost_reason}" if deal.lost_reason else "")
        return Move.advance(journey.lead_id, JourneyState.DEAL_LOST, reason)
    return Move.wait(journey.lead_id, f"waiting for a salesperson on deal {deal_id}", recheck)


@journey_task("check-deals", "pipedrive")
async def check_deals(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """deal_open → deal_won | deal_lost, reading each deal at Pipedrive (the reconciler's way
    for a lost webhook); an open deal stays waiting and is read again later."""
    pipedrive = await context.client("pipedrive")
    return await each_journey(
        context,
        journeys,
        lambda journey, recorded: _check_one(context, pipedrive, journey, recorded),
        "pipedrive",
    )
