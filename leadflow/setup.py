"""`leadflow setup --sandbox URL`: one coherent set of Blocks and business choices for a sandbox.

A newcomer (and the demo, and the journey's tests) needs what an agency would set up by hand at
each vendor: credentials Blocks saved in Prefect, a lead form, a contract template with a CPF
tab, the deal custom field holding leadflow's lead id, approved WhatsApp templates and a hosting
order with room for client sites. The sandbox already has the form, the template, the WhatsApp
templates and the hosting orders; this reads them from it and writes `leadflow.toml` naming them.

Idempotent: Blocks are saved with overwrite (the same values change nothing), the custom field is
looked up before it is created, and `leadflow.toml` is rewritten only when its text would change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SetupReport", "business_toml", "setup_sandbox"]

DEMO_FORM_NAME = "Site institucional"
DEMO_VALUE = "1490.00"
DEMO_DOMAIN = "{slug}-{lead_id}.clientes.exemplo.com.br"


@dataclass
class SetupReport:
    """What setup did, one line per thing, and what a person must still do."""

    done: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    by_hand: list[str] = field(default_factory=list)


def business_toml(
    *,
    blocks_name: str,
    form_id: str,
    template_id: str,
    order_id: int,
    extra: str = "",
) -> str:
    """The leadflow.toml text for one form selling one website product."""
    return (
        "# Written by `leadflow setup --sandbox`: the business's choices (leadflow/business.py).\n"
        f'blocks = "{blocks_name}"\n\n'
        "[[forms]]\n"
        f'id = "{form_id}"\n'
        f'name = "{DEMO_FORM_NAME}"\n'
        'deal_title = "{full_name} — Site institucional"\n'
        f'value = "{DEMO_VALUE}"\n'
        'currency = "BRL"\n'
        'product = "site"\n\n'
        "[products.site]\n"
        f"order_id = {order_id}\n"
        f'domain = "{DEMO_DOMAIN}"\n\n'
        "[docusign]\n"
        f'template_id = "{template_id}"\n'
        'signer_role = "Cliente"\n'
        'cpf_tab_label = "cpf"\n\n'
        "[whatsapp]\n"
        'pix_template = "pix_cobranca"\n'
        'welcome_template = "boas_vindas"\n'
        f"{extra}"
    )


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


async def _hosting_order(hostinger: Any) -> int:
    page = await hostinger.list_hosting_orders()
    orders = getattr(page, "data", page)
    active = [order for order in orders if getattr(order, "status", "active") == "active"]
    if not active:
        raise RuntimeError("the sandbox's Hostinger account has no active hosting order")
    return int(active[0].id)


async def _deal_field(pipedrive: Any, name: str) -> bool:
    """Make the deal custom field holding the lead id; False when it already existed."""
    from blocks.pipedrive_models import DealFieldCreate

    if any(f.name == name for f in await pipedrive.list_deal_fields()):
        return False
    await pipedrive.create_deal_field(DealFieldCreate(name=name, field_type="varchar"))
    return True


async def setup_sandbox(
    sandbox_url: str,
    *,
    blocks_name: str = "sandbox",
    business_file: Path = Path("leadflow.toml"),
    extra_toml: str = "",
) -> SetupReport:
    """Save the sandbox's Blocks as `blocks_name`, make the deal field, write leadflow.toml."""
    from leadflow.business import PipedriveChoices
    from leadflow.sandbox_blocks import sandbox_credentials_from, sandbox_overview

    report = SetupReport()
    overview = sandbox_overview(sandbox_url)
    blocks = sandbox_credentials_from(overview)
    for vendor, block in blocks.items():
        await block.save(blocks_name, overwrite=True)
        report.done.append(f"Block {vendor} saved as {blocks_name!r}")
    offered = overview["vendors"]
    form_id = offered["facebook"]["credentials"]["form_id"]
    template_id = offered["docusign"]["credentials"]["template_id"]
    async with blocks["hostinger"].get_client() as hostinger:
        order_id = await _hosting_order(hostinger)
    field_name = PipedriveChoices().lead_id_field
    async with blocks["pipedrive"].get_client() as pipedrive:
        made = await _deal_field(pipedrive, field_name)
    (report.done if made else report.unchanged).append(f"Pipedrive deal field {field_name!r}")
    text = business_toml(
        blocks_name=blocks_name,
        form_id=form_id,
        template_id=template_id,
        order_id=order_id,
        extra=extra_toml,
    )
    if _write_if_changed(business_file, text):
        report.done.append(f"{business_file} written (form {form_id}, hosting order {order_id})")
    else:
        report.unchanged.append(f"{business_file}")
    report.by_hand.append(
        "point the sandbox's webhooks at leadflow: `leadflow webhooks register --public-url URL`"
    )
    return report
