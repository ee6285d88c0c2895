"""Pydantic models of the Pipedrive payloads leadflow sends and reads (contracts README §2).

Where it sits: blocks/pipedrive.py sends the `*Create`/`*Update` models and parses answers into
the others; tasks build the inputs and read the outputs. Persons and deals are API v2
(`emails`/`phones` as lists of entries, custom fields under `custom_fields` keyed by the field's
40-hex key); deal fields and notes are API v1, which v2 lacks. Response models ignore keys they do
not name — Pipedrive adds fields often, and a new key must not break the journey.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DealStatus = Literal["open", "won", "lost"]
#: what `GET /api/v2/persons/search` may search in (`fields`, v2.yaml enum)
PersonSearchField = Literal["custom_fields", "email", "notes", "phone", "name"]
#: what `GET /api/v2/deals/search` may search in (`fields`, v2.yaml enum)
DealSearchField = Literal["custom_fields", "notes", "title"]
FieldType = Literal[
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
    "visible_to",
]

#: what a v1 webhook subscription listens to (`POST /v1/webhooks`, v1.yaml enums)
WebhookAction = Literal["create", "change", "delete", "*"]
WebhookObject = Literal[
    "activity", "deal", "lead", "note", "organization", "person", "pipeline", "product",
    "stage", "user", "*",
]  # fmt: skip

T = TypeVar("T")


class _Request(BaseModel):
    """What leadflow sends: unknown keys are a bug in leadflow, so they are refused."""

    model_config = ConfigDict(extra="forbid")

    def payload(self) -> dict[str, Any]:
        """The JSON body: unset fields are left out so PATCH changes only what was given."""
        dumped = self.model_dump(mode="json")
        return {key: value for key, value in dumped.items() if key in self.model_fields_set}


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContactEntry(BaseModel):
    """One e-mail or phone of a person (v2 shape)."""

    model_config = ConfigDict(extra="ignore")

    value: str
    primary: bool = False
    label: str | None = "work"


# ------------------------------------------------------------------------------------ persons


class _PersonFields(_Request):
    """What leadflow may set on a person, whether it creates one or changes one."""

    name: str | None = Field(default=None, min_length=1)
    emails: list[ContactEntry] | None = None
    phones: list[ContactEntry] | None = None
    owner_id: int | None = None
    org_id: int | None = None
    visible_to: int | None = None
    custom_fields: dict[str, Any] | None = None


class PersonCreate(_PersonFields):
    name: str = Field(min_length=1)


class PersonUpdate(_PersonFields):
    """Only the fields given are changed."""


class Person(_Response):
    id: int
    name: str | None = None
    emails: list[ContactEntry] = Field(default_factory=list)
    phones: list[ContactEntry] = Field(default_factory=list)
    owner_id: int | None = None
    org_id: int | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    add_time: str | None = None
    update_time: str | None = None

    @field_validator("emails", "phones", "custom_fields", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return value if value is not None else ([] if not isinstance(value, dict) else {})


class PersonMatch(_Response):
    """A person found by search: v2 search gives e-mails and phones as plain strings."""

    id: int
    name: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    custom_fields: list[Any] = Field(default_factory=list)
    result_score: float | None = None


# -------------------------------------------------------------------------------------- deals


class _DealFields(_Request):
    """What leadflow may set on a deal, whether it creates one or changes one."""

    title: str | None = Field(default=None, min_length=1)
    person_id: int | None = None
    owner_id: int | None = None
    pipeline_id: int | None = None
    stage_id: int | None = None
    value: float | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    status: DealStatus | None = None
    expected_close_date: str | None = None
    custom_fields: dict[str, Any] | None = None


class DealCreate(_DealFields):
    title: str = Field(min_length=1)
    org_id: int | None = None
    visible_to: int | None = None


class DealUpdate(_DealFields):
    """Only the fields given are changed; `lost_reason` goes with `status="lost"`."""

    lost_reason: str | None = None


class _DealHeadline(_Response):
    """What both a deal and a search hit say of the deal."""

    id: int
    title: str | None = None
    status: str | None = None
    value: float | None = None
    currency: str | None = None


class Deal(_DealHeadline):
    person_id: int | None = None
    org_id: int | None = None
    owner_id: int | None = None
    pipeline_id: int | None = None
    stage_id: int | None = None
    lost_reason: str | None = None
    won_time: str | None = None
    lost_time: str | None = None
    add_time: str | None = None
    update_time: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("custom_fields", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class _Ref(_Response):
    id: int | None = None
    name: str | None = None


class DealMatch(_DealHeadline):
    """A deal found by search."""

    person: _Ref | None = None
    custom_fields: list[Any] = Field(default_factory=list)
    result_score: float | None = None


# -------------------------------------------------------------------------------- v1: fields


class DealFieldCreate(_Request):
    name: str = Field(min_length=1)
    field_type: FieldType
    options: list[dict[str, Any]] | None = None
    add_visible_flag: bool | None = None


class DealField(_Response):
    id: int | None = None
    key: str
    name: str
    field_type: str

    @property
    def is_custom_key(self) -> bool:
        """Custom fields have a 40-hex key; built-in ones have a readable name (`title`)."""
        return len(self.key) == 40 and all(c in "0123456789abcdef" for c in self.key)


# --------------------------------------------------------------------------------- v1: notes


class NoteCreate(_Request):
    content: str = Field(min_length=1)
    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    pinned_to_deal_flag: Literal[0, 1] | None = None


class Note(_Response):
    id: int
    content: str
    deal_id: int | None = None
    person_id: int | None = None
    add_time: str | None = None


# ------------------------------------------------------------------------------ v1: webhooks


class WebhookCreate(_Request):
    """A webhook subscription to make (contracts README §2.7).

    Pipedrive signs nothing: the basic-auth pair given here is the only proof a delivery is
    Pipedrive's, so the password is a secret until the moment it is sent.
    """

    subscription_url: str = Field(min_length=1)
    event_action: WebhookAction
    event_object: WebhookObject
    name: str = Field(min_length=1, max_length=255)
    version: Literal["1.0", "2.0"] | None = None
    user_id: int | None = None
    http_auth_user: str | None = None
    http_auth_password: SecretStr | None = None

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        if self.http_auth_password is not None:
            body["http_auth_password"] = self.http_auth_password.get_secret_value()
        return body


class Webhook(_Response):
    """A subscription as Pipedrive lists it (BaseWebhook); its password is never read back."""

    id: int
    subscription_url: str
    event_action: str
    event_object: str
    name: str | None = None
    version: str | None = None
    is_active: bool = True
    http_auth_user: str | None = None
    add_time: str | None = None


# --------------------------------------------------------------------------------------- pages


class Page(BaseModel, Generic[T]):
    """One page of a cursor- (v2) or offset-paginated (v1) list; `next` is None on the last."""

    items: list[T]
    next_cursor: str | None = None
    next_start: int | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None or self.next_start is not None


class OAuthTokens(BaseModel):
    """What Pipedrive's token endpoint answers (a refresh may rotate the refresh token)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - a scheme name
    expires_in: int = 3600
    scope: str | None = None
    api_domain: str | None = None
