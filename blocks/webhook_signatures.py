"""The verifying side of each vendor's webhook authentication, beside the vendors' blocks.

Every check works on what the vendor actually sends, computed over the RAW request body (never
re-serialised JSON: Meta escapes unicode, DocuSign sends whatever bytes it signed), and compares
with `hmac.compare_digest`, so a forger learns nothing from how long a refusal took:

- Facebook, WhatsApp: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256(app secret, raw body);
- Pipedrive: `Authorization: Basic base64(user:password)`, the credentials set on subscribing;
- DocuSign: `X-DocuSign-Signature-1..N: base64(HMAC-SHA256(key, raw body))`, any active key;
- Asaas: `asaas-access-token: <token>`, the static token set on subscribing.

Meta's GET handshake (`hub.mode`, `hub.verify_token`, `hub.challenge`) is `meta_handshake`.
Each verifier returns a bool and never raises on hostile input: the caller answers 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

__all__ = [
    "DOCUSIGN_SIGNATURE_PREFIX",
    "HUB_SIGNATURE_HEADER",
    "docusign_signature",
    "hub_signature",
    "meta_handshake",
    "verify_asaas_token",
    "verify_basic_auth",
    "verify_docusign_signatures",
    "verify_hub_signature",
]

HUB_SIGNATURE_HEADER = "x-hub-signature-256"
DOCUSIGN_SIGNATURE_PREFIX = "x-docusign-signature-"
#: DocuSign allows up to 100 Connect keys, so at most 100 signature headers are looked at.
_MAX_DOCUSIGN_SIGNATURES = 100


def _bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def hub_signature(app_secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends for `body`: `sha256=<lowercase hex>`."""
    return "sha256=" + hmac.new(_bytes(app_secret), body, hashlib.sha256).hexdigest()


def verify_hub_signature(app_secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is Meta's signature of `body` with `app_secret` (Facebook, WhatsApp).

    The legacy sha1 `X-Hub-Signature` is not accepted: Meta sends the sha256 one with it, and a
    receiver that falls back to sha1 gives a forger the weaker of the two.
    """
    if not header or not app_secret:
        return False
    expected = hub_signature(app_secret, body)
    # hex is case-insensitive; Meta sends lowercase, compare the normalised form
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("utf-8", "replace"))


def docusign_signature(key: str | bytes, body: bytes) -> str:
    """One `X-DocuSign-Signature-N` value: base64 of HMAC-SHA256(key, raw body)."""
    return base64.b64encode(hmac.new(_bytes(key), body, hashlib.sha256).digest()).decode("ascii")


def verify_docusign_signatures(
    keys: Iterable[str | bytes], body: bytes, headers: Mapping[str, str]
) -> bool:
    """True when any `X-DocuSign-Signature-N` header matches `body` under any of `keys`.

    DocuSign sends one signature per active Connect key; a receiver holds the keys it trusts
    (several during a rotation). Every pair is compared, so timing says nothing about which
    key or header matched.
    """
    digests = [hmac.new(_bytes(k), body, hashlib.sha256).digest() for k in keys if k]
    if not digests:
        return False
    received: list[bytes] = []
    for name, value in headers.items():
        if not name.lower().startswith(DOCUSIGN_SIGNATURE_PREFIX):
            continue
        if len(received) >= _MAX_DOCUSIGN_SIGNATURES:
            break
        try:
            received.append(base64.b64decode(value.strip(), validate=True))
        except (binascii.Error, ValueError):
            continue
    matched = False
    for signature in received:
        for digest in digests:
            matched |= hmac.compare_digest(digest, signature)
    return matched


def verify_basic_auth(user: str, password: str, authorization: str | None) -> bool:
    """True when `authorization` is `Basic base64(user:password)` (Pipedrive's webhook auth)."""
    if not authorization or not user:
        return False
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, separator, given_password = decoded.partition(b":")
    user_ok = hmac.compare_digest(given_user, user.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password, password.encode("utf-8"))
    return bool(separator) and user_ok and password_ok


def verify_asaas_token(expected: str, received: str | None) -> bool:
    """True when the `asaas-access-token` header equals the token set on the webhook."""
    if not expected or received is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8", "replace"))


def meta_handshake(
    verify_token: str, mode: str | None, token: str | None, challenge: str | None
) -> str | None:
    """The challenge to echo when Meta's subscription handshake is genuine, else None (403)."""
    if mode != "subscribe" or challenge is None or token is None or not verify_token:
        return None
    if not hmac.compare_digest(verify_token.encode("utf-8"), token.encode("utf-8", "replace")):
        return None
    return challenge
