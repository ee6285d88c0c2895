"""What every vendor's credentials Block shares: the way it builds its VendorHTTP.

Where it sits: each blocks/<vendor>.py defines one `...Credentials` Block on this base (itself
Prefect's `CredentialsBlock`, as prefect-aws's `AwsCredentials` is). A subclass says which
vendor it is, which secrets identify the account the vendor counts its limits against, and what
those limits are; the base builds the `VendorHTTP` with the process-wide shared limit of that
account once, so the six Blocks do not each repeat the wiring. Tasks never see this module:
they load a vendor's Block and call its `get_client()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypedDict

import httpx
from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field

from blocks.http import (
    HttpPolicy,
    RateLimit,
    VendorHTTP,
    credential_fingerprint,
    shared_limit,
)

__all__ = ["ClientOptions", "VendorCredentials"]


class ClientOptions(TypedDict, total=False):
    """What a caller may replace when it builds a client (`get_client(**options)`): tests
    give a policy with a fake sleep, a mock transport, a bucket on a fake clock."""

    policy: HttpPolicy | None
    transport: httpx.AsyncBaseTransport | None
    rate_limit: RateLimit | None


class VendorCredentials(CredentialsBlock, ABC):
    """A vendor's credentials Block: base URL, secrets, and the limits its account is held to.

    Subclasses set `vendor`, declare `base_url` with the vendor's production URL as default,
    and implement `_account_secrets()` (what tells two accounts apart for the vendor's limits;
    only a fingerprint of it is kept) and `_published_rate_limit()` (the vendor's published
    limit for one account, built once per process).
    """

    #: the vendor's name in errors, logs and the shared-limit registry
    vendor: ClassVar[str]

    base_url: str
    concurrency_limit_name: str | None = Field(
        default=None,
        description="Prefect global rate limit the tasks take before calling this vendor "
        "(the limit across processes).",
    )

    @abstractmethod
    def _account_secrets(self) -> tuple[str | None, ...]:
        """The values the vendor counts its limits by (a token, an account id...)."""

    @abstractmethod
    def _published_rate_limit(self) -> RateLimit:
        """A new RateLimit as the vendor publishes it for one account."""

    def shared_rate_limit(self) -> RateLimit:
        """The one RateLimit of this account in the process: every client of it shares it."""
        fingerprint = credential_fingerprint(*self._account_secrets())
        return shared_limit(self.vendor, fingerprint, self._published_rate_limit)

    def vendor_http(self, options: ClientOptions | None = None, **http: Any) -> VendorHTTP:
        """This account's VendorHTTP under its shared limit; `options` replace policy,
        transport or the limit (tests), `http` goes to VendorHTTP as it is: headers, auth,
        error_parser, the vendor's throttling and credential codes, the rate-limit scope, a
        concurrency cap."""
        options = options or {}
        return VendorHTTP(
            self.vendor,
            self.base_url,
            rate_limit=options.get("rate_limit") or self.shared_rate_limit(),
            policy=options.get("policy"),
            transport=options.get("transport"),
            **http,
        )
