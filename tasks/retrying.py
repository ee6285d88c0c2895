"""When Prefect retries a whole task run: only for infrastructure, never for a vendor's answer.

Vendor calls are retried by the HTTP policy (blocks/http.py) and, per lead, by the journey's
`due_at`; a task run that failed as a whole failed for another reason (the ledger's database
unreachable, the Prefect API down while loading a Block). Retrying those is safe — every vendor
write goes through the effect protocol — and retrying anything else would stack retries on the
HTTP policy's own, or repeat a permanent refusal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_infrastructure_failure", "retry_infrastructure_only"]


def is_infrastructure_failure(error: BaseException | None) -> bool:
    """The ledger or the network let the run down (not a vendor's answer, not a bug)."""
    from blocks import VendorError
    from ledger import LedgerUnavailable

    if error is None or isinstance(error, VendorError):
        return False  # the HTTP policy already retried what was transient
    if isinstance(error, LedgerUnavailable | ConnectionError | TimeoutError):
        return True
    return type(error).__module__.startswith(("httpx", "httpcore"))  # the Prefect API, say


def retry_infrastructure_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: the failed state carries the exception the task raised
    (Prefect builds it as `Failed(data=exception)`), read without fetching any result."""
    data = getattr(state, "data", None)
    return is_infrastructure_failure(data if isinstance(data, BaseException) else None)
