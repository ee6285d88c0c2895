"""The webhook service's own settings: the vendors' webhook secrets, limits and how to trigger.

Secrets come from the environment (or `.env`) as SecretStr, never from code or logs
(DESIGN.md, principle 9). A vendor whose secret is not set has its endpoint refuse every
delivery with 401: a receiver that cannot verify must not store.

    LEADFLOW_WEBHOOK_FACEBOOK_APP_SECRET    app secret (X-Hub-Signature-256 of leadgen changes)
    LEADFLOW_WEBHOOK_FACEBOOK_VERIFY_TOKEN  echoed by Meta's GET handshake
    LEADFLOW_WEBHOOK_WHATSAPP_APP_SECRET    app secret of the WhatsApp app
    LEADFLOW_WEBHOOK_WHATSAPP_VERIFY_TOKEN  (defaults to the Facebook verify token)
    LEADFLOW_WEBHOOK_PIPEDRIVE_USER / _PASSWORD   basic auth given when subscribing
    LEADFLOW_WEBHOOK_DOCUSIGN_HMAC_KEYS     comma-separated Connect keys (rotation: several)
    LEADFLOW_WEBHOOK_ASAAS_TOKEN            the webhook's authToken (asaas-access-token)
    LEADFLOW_WEBHOOK_MAX_BODY_BYTES         413 above this (1 MiB)
    LEADFLOW_WEBHOOKS_TRIGGER               deployment | in-process | none
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from leadflow.settings import env_settings

ENV_PREFIX = "LEADFLOW_WEBHOOK_"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
HANDLE_DELIVERIES_DEPLOYMENT = "handle-deliveries/handle-deliveries"


class TriggerMode(StrEnum):
    """How a stored delivery starts its processing once it has been acknowledged."""

    DEPLOYMENT = "deployment"  # run_deployment on a Prefect server (several machines)
    IN_PROCESS = "in-process"  # an asyncio task in the service's own loop (one machine)
    NONE = "none"  # store only: the reconciler processes the inbox


class WebhookSettings(BaseSettings):
    """What the webhook service needs; each field is `LEADFLOW_WEBHOOK_<NAME>`."""

    model_config = env_settings(ENV_PREFIX, populate_by_name=True)

    facebook_app_secret: SecretStr | None = Field(None, description="Meta app secret (Lead Ads).")
    facebook_verify_token: SecretStr | None = Field(None, description="Meta handshake token.")
    whatsapp_app_secret: SecretStr | None = Field(None, description="Meta app secret (WhatsApp).")
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="WhatsApp handshake token; the Facebook one when empty."
    )
    pipedrive_user: str | None = Field(None, description="Basic auth user of Pipedrive's hook.")
    pipedrive_password: SecretStr | None = Field(None, description="Its basic auth password.")
    docusign_hmac_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Connect HMAC keys, comma-separated (several: rotation)."
    )
    asaas_token: SecretStr | None = Field(None, description="Asaas webhook authToken.")
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, description="Largest delivery accepted (413 above)."
    )
    trigger: TriggerMode = Field(
        TriggerMode.IN_PROCESS,
        validation_alias=AliasChoices("LEADFLOW_WEBHOOKS_TRIGGER", "trigger"),
        description="deployment | in-process | none",
    )
    deployment_name: str = Field(
        HANDLE_DELIVERIES_DEPLOYMENT, description="The deployment run for each new delivery."
    )

    @field_validator("docusign_hmac_keys", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def meta_verify_token(self, vendor: str) -> str | None:
        """The handshake token Meta must echo for `vendor` (facebook or whatsapp)."""
        token = self.whatsapp_verify_token if vendor == "whatsapp" else None
        token = token or self.facebook_verify_token
        return token.get_secret_value() if token else None

    def docusign_keys(self) -> list[str]:
        return [key.get_secret_value() for key in self.docusign_hmac_keys]
