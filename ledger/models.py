"""The ledger's tables as typed SQLAlchemy 2 models; the migrations in ledger/migrations build them.

Tables: `leads` (what came in, as received and as normalised), `journeys` (one per lead: its
state, when its next step is due, who holds it), `journey_transitions` (every move, with when,
from, to, cause, reason), `effects` (one per external side effect, keyed by an idempotency key),
`inbox` (raw webhook deliveries, unique per vendor event) and `quarantine` (leads stopped at the
gate with every rule they broke) and `cursors` (where each poll stopped). Nothing outside
ledger/ sees these classes: the Ledger returns frozen views (ledger.views).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: The character that starts an escape in stored text: a private-use code point, itself escaped.
ESCAPE = "\ue000"
#: What PostgreSQL cannot hold in text or JSONB (NUL, lone surrogates), and the escape itself.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff\ue000]")
_ESCAPED = re.compile("\ue000([0-9a-f]{4})")


def escape_text(value: str) -> str:
    """`value` with NUL, lone surrogates and the escape character written as ESCAPE + 4 hex
    digits: storable on PostgreSQL (which refuses the first two) and read back equal."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda match: f"{ESCAPE}{ord(match.group(0)):04x}", value)


def unescape_text(value: str) -> str:
    """The text `escape_text` was given."""
    if ESCAPE not in value:
        return value
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), value)


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    """`value` (decoded JSON) with `text` applied to every string, keys included."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {
            (text(key) if isinstance(key, str) else key): _walk(item, text)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(item, text) for item in value]
    return value


def _storable(value: Any) -> Any:
    """`value` as JSON both databases hold alike, escaped (escape_text) on the way in.

    JSON has no NaN, Infinity, bytes or sets, and PostgreSQL refuses what Python's json module
    would write for them, while SQLite keeps it: so a non-finite number is stored as its name
    ("NaN", "Infinity", "-Infinity"), bytes as text (undecodable bytes kept as lone
    surrogates, which escape_text keeps losslessly), a set or tuple as a list, and any other
    object as its text, never as an error that loses the whole row (a quarantined lead keeps
    whatever the form sent).
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {
            escape_text(key if isinstance(key, str) else str(key)): _storable(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    if isinstance(value, set | frozenset):
        items = [_storable(item) for item in value]
        return sorted(items, key=repr)
    if isinstance(value, bytes | bytearray):
        return escape_text(bytes(value).decode("utf-8", "surrogateescape"))
    return escape_text(str(value))


class SafeJson(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact); Python None is SQL NULL.

    Every string in the document goes through `escape_text` on the way in and `unescape_text`
    on the way out, so a vendor payload holding NUL or a lone surrogate is stored losslessly on
    both databases alike (PostgreSQL's JSONB refuses both); values JSON cannot hold are made
    storable alike on both (see `_storable`).
    """

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else _storable(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else _walk(value, unescape_text)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """TypeDecorator's (the JSON type decodes, `process_result_value` unescapes), except
        that a document read as text with no escape in it is not walked string by string: on
        SQLite every read of a lead, an effect or a journey's response went through that walk,
        a few percent of a journey's CPU, for documents that almost never hold an escape.
        Where the driver decodes JSON itself (psycopg), every document is walked as before."""
        decode = self.impl_instance.result_processor(dialect, coltype)
        if decode is None:
            return super().result_processor(dialect, coltype)
        unescape = self.process_result_value

        def process(value: Any) -> Any:
            if value is None:
                return None
            decoded = decode(value)
            if isinstance(value, str) and not _may_hold_escape(value):
                return decoded
            return unescape(decoded, dialect)

        return process


def _may_hold_escape(text: str) -> bool:
    """Whether a JSON text can hold `ESCAPE`, written as itself or as a JSON escape."""
    return ESCAPE in text or "\\ue000" in text or "\\uE000" in text


class SafeText(TypeDecorator[str]):
    """Free text (reasons, vendor error messages, notes) stored losslessly on both databases."""

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else escape_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else unescape_text(value)


JsonDocument = SafeJson()

#: Integer keys: BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY is rowid).
Key = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones and SQLAlchemy would hand back naive
    values, so aware values are stored as naive UTC and read back as aware UTC. A naive value is
    refused: guessing its zone is how timestamps silently drift by three hours in Brazil.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the ledger's tables."""


class Lead(Base):
    """A lead as it arrived (raw) and as the gate normalised it; unique per source and source id.

    The contact columns (email, phone, document) copy the normalised values that de-duplication
    searches, so that search is an indexed look-up instead of a scan of JSON.
    """

    __tablename__ = "leads"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_leads_source_source_id"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    raw: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    normalized: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    document: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duplicate_of_lead_id: Mapped[int | None] = mapped_column(
        Key, ForeignKey("leads.id", name="fk_leads_duplicate_of"), nullable=True
    )
    duplicate_reason: Mapped[str | None] = mapped_column(SafeText, nullable=True)

    journey: Mapped[Journey | None] = relationship(back_populates="lead", uselist=False)


class Journey(Base):
    """The one journey of a lead: its state, when its next step is due, and who holds it now."""

    __tablename__ = "journeys"
    __table_args__ = (Index("ix_journeys_state_due_at", "state", "due_at"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(
        Key, ForeignKey("leads.id", name="fk_journeys_lead", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dead_lettered_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when the journey entered its state (a wait on a person is shown "since" this)
    state_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: why the last step left it where it is (waiting for a signature, retrying after a 503)
    waiting_reason: Mapped[str | None] = mapped_column(SafeText, nullable=True)

    lead: Mapped[Lead] = relationship(back_populates="journey")
    transitions: Mapped[list[JourneyTransition]] = relationship(
        back_populates="journey",
        order_by="JourneyTransition.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class JourneyTransition(Base):
    """One move of a journey: when, from, to, what caused it and why."""

    __tablename__ = "journey_transitions"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    journey_id: Mapped[int] = mapped_column(
        Key,
        ForeignKey("journeys.id", name="fk_journey_transitions_journey", ondelete="CASCADE"),
        index=True,
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(SafeText, nullable=True)

    journey: Mapped[Journey] = relationship(back_populates="transitions")


class Effect(Base):
    """One external side effect (a deal, a charge, a message), keyed by its idempotency key.

    While an attempt is in flight, `lease_token` names it and `leased_until` bounds it: a second
    worker is refused until the lease runs out (the first worker crashed), so at most one
    vendor call per effect is ever under way.
    """

    __tablename__ = "effects"
    __table_args__ = (Index("ix_effects_vendor_object", "vendor", "vendor_object_id"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    vendor: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(128))
    lead_id: Mapped[int | None] = mapped_column(
        Key, ForeignKey("leads.id", name="fk_effects_lead"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    vendor_object_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(SafeText, nullable=True)
    permanent: Mapped[bool] = mapped_column(Boolean)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Vendor object ids a late worker reported after another attempt completed the effect:
    #: objects that may exist twice at the vendor, for a person or the reconciler to check.
    orphan_candidates: Mapped[list[str] | None] = mapped_column(JsonDocument, nullable=True)
    note: Mapped[str | None] = mapped_column(SafeText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboxEntry(Base):
    """A raw webhook delivery, stored before it is acknowledged (DESIGN.md, principle 2)."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("vendor", "event_id", name="uq_inbox_vendor_event_id"),
        Index("ix_inbox_processed_at", "processed_at", "id"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    vendor: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(SafeText, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QuarantineRecord(Base):
    """A lead stopped at the gate: every rule it broke, the values as normalised, fixes, replay."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(
        Key, ForeignKey("leads.id", name="fk_quarantine_lead"), index=True
    )
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    values: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    fixes: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fixed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Cursor(Base):
    """A named position in a vendor's feed (the Facebook poll cursor of one form)."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(SafeText)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
