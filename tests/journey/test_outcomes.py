"""How journeys end when vendors refuse, fail for a while, or lose answers: a permanent 4xx
dead-letters at its step with the vendor's message and resumes there once fixed; transient faults
end in success; nothing is ever created twice; every state of the machine is reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import JourneyState, legal_edges
from tests.journey.world import World, change_business, use_business

pytestmark = pytest.mark.integration

S = JourneyState

#: per stage: a business choice that makes its vendor refuse, the fix, where it dead-letters,
#: and what the vendor says
REFUSALS = {
    "deals": ('product = "site"\n', 'product = "site"\nstage_id = 99\n', S.QUALIFIED, "Stage 99"),
    "contracts": ("template_id = ", 'template_id = "0000" #', S.DEAL_WON, "TEMPLATE_ID_INVALID"),
    "billing": (
        'pix_template = "pix_cobranca"',
        'pix_template = "pix_x"',
        S.CONTRACT_SIGNED,
        "132001",
    ),
    "activation": ("order_id = ", "order_id = 999999 #", S.PAID, "order"),
    "welcome": (
        'welcome_template = "boas_vindas"',
        'welcome_template = "x"',
        S.ACTIVATED,
        "132001",
    ),
}

#: a valid value for each lead field, to fix a quarantined lead by hand
VALID = {
    "full_name": "Cliente Corrigido",
    "email": "cliente.corrigido@exemplo.com.br",
    "phone_number": "+5511987650000",
    "cpf": "52998224725",
    "cnpj": "11222333000181",
}


@pytest.mark.parametrize("stage", list(REFUSALS))
async def test_a_permanent_refusal_dead_letters_at_its_step_and_a_retry_resumes_it_once_fixed(
    world: World, tmp_path: Path, stage: str
) -> None:
    old, bad, step, message = REFUSALS[stage]
    good = change_business(world, tmp_path, "", "")
    change_business(world, tmp_path, old, bad)
    world.people(accept=1.0)
    world.submit_leads(1)

    assert await world.reconcile_until_settled() == {S.DEAD_LETTERED: 1}
    (lead_id,) = world.lead_ids()
    journey = world.ledger.get_journey(lead_id)
    assert journey.dead_lettered_from == step
    assert message.lower() in world.last_reason(lead_id).lower()

    use_business(good)  # the cause is fixed
    world.ledger.retry_dead_lettered(lead_id, "fixed by hand")
    assert await world.reconcile_until_settled() == {S.WELCOMED: 1}, world.describe()
    assert world.created_twice() == []


async def test_transient_faults_on_every_vendor_end_in_success_with_nothing_created_twice(
    world: World,
) -> None:
    faults = {
        "error_rate": 0.2,
        "throttle_rate": 0.1,
        "retry_after_seconds": 0,
        "hang_rate": 0.03,
        "hang_seconds": 2,
        "drop_rate": 0.03,
        "lost_answer_rate": 0.05,
    }
    for vendor in ("facebook", "pipedrive", "docusign", "asaas", "hostinger", "whatsapp"):
        world.admin.put(f"/faults/{vendor}", json=faults).raise_for_status()
    world.people(accept=1.0)
    world.submit_leads(8)

    counts = await world.reconcile_until_settled(rounds=40)

    assert counts == {S.WELCOMED: 8}, world.describe()
    assert world.created_twice() == []
    injected = world.admin.get("/faults").json()
    assert injected  # the faults were really there


async def test_every_state_is_reached_and_every_edge_taken_is_legal(
    world: World, tmp_path: Path
) -> None:
    good = change_business(world, tmp_path, "", "")
    change_business(world, tmp_path, 'pix_template = "pix_cobranca"', 'pix_template = "pix_x"')
    world.submit_leads(7, bad_share=0.0)
    world.submit_leads(1, bad_share=1.0)
    world.people(accept=0.7, refuse=0.3)
    await world.reconcile_until_settled()

    use_business(good)
    for lead_id in world.lead_ids():
        if world.ledger.get_journey(lead_id).state == S.DEAD_LETTERED:
            world.ledger.retry_dead_lettered(lead_id, "template fixed")
    for record in world.ledger.list_quarantine():
        for field in ("full_name", "email", "phone_number"):
            world.ledger.fix_quarantine(record.id, field, VALID[field])
        for field in ("cpf", "cnpj"):
            if record.values.get(field) not in (None, ""):
                world.ledger.fix_quarantine(record.id, field, VALID[field])
    from flows import replay_quarantine

    await replay_quarantine()
    world.people(accept=1.0)
    await world.reconcile_until_settled()

    edges = {
        (step.from_state, step.to_state)
        for lead_id in world.lead_ids()
        for step in world.ledger.journey_history(lead_id)
    }
    reached = {state for edge in edges for state in edge}
    assert reached == set(JourneyState)
    assert edges <= legal_edges()
    assert world.created_twice() == []
