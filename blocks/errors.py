"""The errors every vendor client raises, so flows can decide what to do without knowing HTTP.

Where it sits: the vendor clients (blocks/<vendor>.py) raise these through the shared HTTP policy
(blocks/http.py); tasks catch them and decide — retry later, dead-letter the journey, refresh a
credential, or look an object up before creating it again.

The whole tree::

    VendorError(vendor, message)              anything a vendor call can fail with
    ├── TransientError                        network errors, 5xx: retrying later may succeed
    │   ├── RateLimitedError                  429 or a vendor rate-limit code: slow down, retry
    │   └── UnknownOutcomeError               a non-idempotent request was sent and no answer came:
    │                                         look the object up before doing anything else
    └── PermanentError(vendor, status, code, message, details)
        │                                     4xx validation: dead-letter, never retry
        ├── AuthenticationError               401/403, a bad token, or a failed token refresh
        └── NotFoundError                     404: the object does not exist at the vendor

One vendor adds its own PermanentError: blocks.hostinger.PurchasesDisabledError (a purchase the
Block does not allow; nothing was sent).

A 2xx answer that cannot be read (not JSON, cut short, a required field missing) is a
TransientError for a read and an UnknownOutcomeError for a write (blocks.http `read_answer`):
never a JSONDecodeError, a pydantic ValidationError or a KeyError.

Every error carries the vendor, the HTTP method, the path TEMPLATE (never the filled-in path: ids
and query values may be personal data), the status, the vendor's own error code and its message.
`str(error)` is safe to log: it is built only from those fields, and the message is the vendor's
own text, which callers must mask (leadflow/privacy.py) like any other log line.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

__all__ = [
    "AuthenticationError",
    "NotFoundError",
    "PermanentError",
    "RateLimitedError",
    "TransientError",
    "UnknownOutcomeError",
    "VendorError",
]


class _Context(TypedDict, total=False):
    """What an error says about the call besides the vendor and message: VendorError's keywords,
    which its subclasses take and pass on unchanged."""

    method: str | None
    path: str | None
    status: int | None
    code: str | None
    details: Any


class VendorError(Exception):
    """A vendor call failed. The subclass says what a flow should do about it."""

    #: whether retrying the same request later can succeed (tasks map this to Prefect retries)
    retryable: bool = False

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        self.vendor = vendor
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.details = details
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = " ".join(part for part in (self.method, self.path) if part)
        parts = [self.vendor]
        if where:
            parts.append(where)
        if self.status is not None:
            parts.append(str(self.status))
        if self.code is not None:
            parts.append(f"[{self.code}]")
        return f"{' '.join(parts)}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles task exceptions into results; keyword-only fields must survive that.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[VendorError], state: dict[str, Any]) -> VendorError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._describe())
    return error


class TransientError(VendorError):
    """Network error or 5xx: the vendor may answer next time. `retry_after` is the vendor's hint."""

    retryable = True

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        retry_after: float | None = None,
        **context: Unpack[_Context],
    ) -> None:
        self.retry_after = retry_after
        super().__init__(vendor, message, **context)


class RateLimitedError(TransientError):
    """The vendor refused the call for rate (429 or its own code): nothing was done; wait, retry."""


class UnknownOutcomeError(TransientError):
    """A request that is not idempotent was sent and no answer came back.

    The vendor may or may not have acted on it. Retrying blindly could create a second deal,
    charge or purchase, so the caller must look the object up (by external reference) first.
    """

    retryable = False


class PermanentError(VendorError):
    """The vendor rejected the request itself (4xx): retrying the same request cannot succeed.

    Flows dead-letter the journey with `code` and `message` so a person can fix the data.
    """

    def __init__(
        self,
        vendor: str,
        status: int | None,
        code: str | None,
        message: str,
        details: Any = None,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(
            vendor, message, method=method, path=path, status=status, code=code, details=details
        )


class AuthenticationError(PermanentError):
    """401/403 or a failed token refresh: the credentials in the Block must be fixed."""


class NotFoundError(PermanentError):
    """404: the object is not at the vendor (a look-up's 'no' rather than a failure)."""
