"""Which whole-task failures Prefect retries: infrastructure yes, a vendor's answer never."""

from __future__ import annotations

import httpx
import pytest
from prefect.states import Failed

from blocks import PermanentError, TransientError
from ledger import LedgerUnavailable
from tasks.retrying import retry_infrastructure_only


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (LedgerUnavailable("database is down"), True),
        (httpx.ConnectError("Prefect API unreachable"), True),
        (ConnectionResetError(), True),
        (PermanentError("asaas", 400, "invalid", "CPF inválido"), False),
        (TransientError("asaas", "503"), False),
        (KeyError("a bug"), False),
    ],
)
def test_only_infrastructure_failures_are_retried_by_prefect(
    error: BaseException, retried: bool
) -> None:
    state = Failed(data=error)

    assert retry_infrastructure_only(None, None, state) is retried
