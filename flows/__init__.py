"""Prefect flows: the client's journey as code, one flow per stage, and the reconciler.

    from flows import intake, lead_to_cash

    intake(leads=[{"full_name": "Maria da Silva", "email": "maria@exemplo.com.br",
                   "phone_number": "(11) 98765-4321"}])   # gate + Pipedrive, now
    lead_to_cash()                                        # every journey whose step is due

The flows are async: call them with `asyncio.run(...)` or `await` them (a sync call from a
script works too: Prefect runs an async flow to completion when called outside a loop).
"""

from flows.reconciler import handle_deliveries, lead_to_cash, replay_quarantine
from flows.stages import activation, billing, contracts, deals, intake, welcome
from leadflow.runtime import in_flow_run_process, settle_startup_heap

if in_flow_run_process():
    # a deployment's run: the imports above are this process's for good (leadflow/runtime.py)
    settle_startup_heap()

__all__ = [
    "activation",
    "billing",
    "contracts",
    "deals",
    "handle_deliveries",
    "intake",
    "lead_to_cash",
    "replay_quarantine",
    "welcome",
]
