"""Hostinger: the paid client's website is built, and the journey waits until it is live.

`activate_service` (paid → activating): asks Hostinger to build the site the business's product
names (`[products.<name>]` in leadflow.toml: the hosting order and the domain pattern). The
website is found by its domain before it is asked for again: Hostinger keys websites by domain.
`check_activation` (activating → activated): Hostinger builds sites asynchronously ("up to a few
minutes"), so the journey polls through its `due_at`, backing off from
`activation_poll_seconds` to `activation_poll_cap_seconds`; nothing sleeps inside a task.
`activated` means the vendor says the site is live (`is_enabled`), not that it was accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from blocks.hostinger import CreatedWebsite, NewWebsite, Website
from leadflow.business import slugify
from leadflow.settings import ConfigError
from ledger import ClaimedJourney, JourneyState, LeadView
from tasks.deals import form_of
from tasks.effects import Recorded, VendorWrite
from tasks.journey import (
    Move,
    StepContext,
    each_journey,
    each_lead,
    journey_task,
    move_from_effect,
)

__all__ = ["activate_service", "check_activation", "website_domain"]

WEBSITE = "hostinger.website"


def website_domain(pattern: str, lead: LeadView) -> str:
    """The client's domain from the product's pattern."""
    assert lead.normalized is not None
    name = lead.normalized.full_name
    return pattern.format(
        slug=slugify(name), first_name=slugify(name.split()[0]), lead_id=lead.lead_id
    ).lower()


async def _best_datacenter(hostinger: Any, order_id: int) -> str | None:
    """The datacenter Hostinger suggests for the order (its first): required for the first
    website on a plan (contracts README §5.3), harmless for the others."""
    datacenters = await hostinger.list_datacenters(order_id)
    return datacenters[0].code if datacenters else None


async def _activate_one(context: StepContext, hostinger: Any, lead: LeadView) -> Move:
    if lead.normalized is None:
        return Move.dead_letter(lead.lead_id, "the lead has no normalised data")
    try:
        product = context.business.product(context.business.form(form_of(lead)))
    except ConfigError as error:
        return Move.dead_letter(lead.lead_id, str(error))
    domain = website_domain(product.domain, lead)
    datacenter = product.datacenter_code or await _best_datacenter(hostinger, product.order_id)
    request = NewWebsite(domain=domain, order_id=product.order_id, datacenter_code=datacenter)

    built = await context.perform(
        # Hostinger only says "Request accepted": the site is known by its domain from now on
        VendorWrite[Website | CreatedWebsite].for_lead(
            lead,
            WEBSITE,
            "create_website",
            create=lambda: hostinger.create_website(request),
            object_id=lambda website: domain,
            find=lambda: hostinger.find_by_reference(domain, order_id=product.order_id),
        ),
    )
    if (failed := move_from_effect(context, lead.lead_id, built, "Hostinger website")) is not None:
        return failed
    return Move.advance(
        lead.lead_id,
        JourneyState.ACTIVATING,
        f"Hostinger website {domain} requested",
        recheck_in=context.business.timing.activation_poll_seconds,
    )


@journey_task("activate-service", "hostinger")
async def activate_service(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """paid → activating, for a batch: the client's website asked of Hostinger."""
    hostinger = await context.client("hostinger")
    return await each_lead(
        context,
        journeys,
        lambda lead, _recorded: _activate_one(context, hostinger, lead),
        "hostinger",
    )


async def _check_one(
    context: StepContext, hostinger: Any, journey: ClaimedJourney, recorded: Recorded
) -> Move:
    effect = recorded.effect(WEBSITE)
    if effect is None or not effect.is_done or not effect.vendor_object_id:
        return Move.dead_letter(journey.lead_id, "activating without a requested website")
    domain = effect.vendor_object_id
    website = await hostinger.find_by_reference(domain)
    if website is not None and website.is_enabled:
        return Move.advance(journey.lead_id, JourneyState.ACTIVATED, f"website {domain} is live")
    timing = context.business.timing
    waited = (datetime.now(UTC) - effect.created_at).total_seconds()
    recheck = min(timing.activation_poll_cap_seconds, max(timing.activation_poll_seconds, waited))
    state = "not listed yet" if website is None else "not enabled yet"
    return Move.wait(journey.lead_id, f"waiting for Hostinger: {domain} {state}", recheck)


@journey_task("check-activation", "hostinger")
async def check_activation(context: StepContext, journeys: list[ClaimedJourney]) -> list[Move]:
    """activating → activated once Hostinger lists the site as enabled; else due later."""
    hostinger = await context.client("hostinger")
    return await each_journey(
        context,
        journeys,
        lambda journey, recorded: _check_one(context, hostinger, journey, recorded),
        "hostinger",
    )
