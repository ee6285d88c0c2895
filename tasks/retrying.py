"""When Prefect retries a whole task run: only for infrastructure, never for a vendor's answer.

Vendor calls are retried by the HTTP policy (blocks/http.py) and, per lead, by the journey's
`due_at`; a task run that failed as a whole failed for another reason (the ledger's database
unreachable, the Prefect API down while loading a Block). Retrying those is safe — every vendor
write goes through the effect protocol — and retrying anything else would stack retries on the
HTTP policy's own, or repeat a permanent refusal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["retry_infrastructure_only"]


def retry_infrastructure_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry when the ledger or the network let the run down."""
    from blocks import VendorError
    from ledger import LedgerUnavailable

    try:
        state.result()
    except VendorError:
        return False  # the HTTP policy already retried what was transient
    except (LedgerUnavailable, ConnectionError, TimeoutError):
        return True
    except Exception as error:  # an httpx error talking to the Prefect API, say
        return type(error).__module__.startswith(("httpx", "httpcore"))
    return False
