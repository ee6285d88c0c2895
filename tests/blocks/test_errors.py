"""The error tree flows act on: its shape, what each error carries, pickling."""

from __future__ import annotations

import pickle
import re

import pytest

from blocks import errors


def _tree_in_docstring() -> dict[str, str | None]:
    """Each class drawn in blocks/errors.py's docstring tree -> the class drawn as its parent."""
    doc = errors.__doc__ or ""
    drawing = doc.split("The whole tree::", 1)[1].split("\n\n", 2)[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name) along the current branch
    for line in drawing.splitlines():
        found = re.match(r"^([\s│├└─]*)([A-Z]\w+Error)\b", line)
        if not found:
            continue  # a continuation line of a comment
        column, name = len(found.group(1)), found.group(2)
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def test_the_docstring_draws_exactly_the_real_tree() -> None:
    drawn = _tree_in_docstring()
    real = {
        name: (None if value is errors.VendorError else value.__mro__[1].__name__)
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.VendorError)
    }
    assert drawn == real
    assert set(errors.__all__) == set(real)


@pytest.mark.parametrize(
    ("error_class", "retryable"),
    [
        (errors.TransientError, True),
        (errors.RateLimitedError, True),
        (errors.UnknownOutcomeError, False),  # look it up first
    ],
)
def test_only_what_cannot_duplicate_is_retryable(error_class: type, retryable: bool) -> None:
    assert error_class("asaas", "x").retryable is retryable


@pytest.mark.parametrize(
    "error_class", [errors.PermanentError, errors.AuthenticationError, errors.NotFoundError]
)
def test_permanent_errors_are_never_retryable(error_class: type[errors.PermanentError]) -> None:
    assert error_class("asaas", 400, "code", "message").retryable is False


def test_a_permanent_error_carries_vendor_status_code_message_and_where() -> None:
    error = errors.PermanentError(
        "asaas",
        400,
        "invalid_cpfCnpj",
        "O CPF/CNPJ informado é inválido",
        {"errors": [{"code": "invalid_cpfCnpj"}]},
        method="POST",
        path="/v3/customers",
    )
    assert (error.vendor, error.status, error.code, error.message) == (
        "asaas",
        400,
        "invalid_cpfCnpj",
        "O CPF/CNPJ informado é inválido",
    )
    assert error.details == {"errors": [{"code": "invalid_cpfCnpj"}]}
    assert str(error) == (
        "asaas POST /v3/customers 400 [invalid_cpfCnpj]: O CPF/CNPJ informado é inválido"
    )


def test_a_transient_error_carries_the_vendors_retry_hint() -> None:
    error = errors.RateLimitedError("pipedrive", "slow down", retry_after=2.0, status=429)
    assert error.retry_after == 2.0
    assert str(error) == "pipedrive 429: slow down"


@pytest.mark.parametrize(
    "error",
    [
        errors.PermanentError(
            "asaas", 422, "x", "bad", {"a": 1}, method="POST", path="/v3/payments"
        ),
        errors.RateLimitedError("whatsapp", "slow", retry_after=6.0, status=400, code="131056"),
        errors.UnknownOutcomeError(
            "hostinger", "no answer", method="POST", path="/api/billing/v1/orders"
        ),
        errors.NotFoundError("pipedrive", 404, None, "Deal not found"),
    ],
)
def test_errors_survive_pickling_as_prefect_stores_task_failures(error: errors.VendorError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)
