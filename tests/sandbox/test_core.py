"""The shared state: ids never reused, creations counted, safe under concurrent threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from sandbox.core import INTERNAL, Sandbox, SandboxState


@dataclass
class _Shelf:
    """A typed bucket, as a vendor lays one out."""

    items: dict[str, dict[str, str]] = field(default_factory=dict)
    paused: bool = False


def test_ids_are_sequential_per_vendor_and_kind() -> None:
    state = SandboxState()
    assert [state.next_id("asaas", "customer") for _ in range(3)] == [1, 2, 3]
    assert state.next_id("asaas", "payment", start=1000) == 1000
    assert state.next_id("pipedrive", "customer") == 1


def test_ids_from_50_threads_are_never_duplicated() -> None:
    state = SandboxState()
    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(lambda _: state.next_id("asaas", "customer"), range(5000)))
    assert sorted(ids) == list(range(1, 5001))


def test_creations_are_counted_per_vendor_and_kind() -> None:
    state = SandboxState()
    for _ in range(2):
        state.created("asaas", "customer")
    state.created("whatsapp", "message")
    assert state.counters() == {"asaas": {"customer": 2}, "whatsapp": {"message": 1}}


def test_the_dump_is_a_copy_not_the_live_state() -> None:
    state = SandboxState()
    state.bucket("shop", _Shelf).items["i1"] = {"name": "Ana"}
    dump = state.dump()
    dump["shop"]["items"]["i1"]["name"] = "changed"
    assert state.bucket("shop", _Shelf).items["i1"]["name"] == "Ana"


def test_reset_forgets_objects_sequences_and_counters() -> None:
    state = SandboxState()
    state.bucket("shop", _Shelf).paused = True
    state.next_id("asaas", "customer")
    state.created("asaas", "customer")
    state.reset()
    assert (state.dump(), state.counters(), state.next_id("asaas", "customer")) == ({}, {}, 1)


def test_a_typed_bucket_is_laid_out_once_and_dumped_as_plain_json() -> None:
    state = SandboxState()
    state.bucket("shop", _Shelf).items["i1"] = {"name": "Ana"}
    state.bucket("shop", _Shelf).paused = True
    assert state.dump() == {"shop": {"items": {"i1": {"name": "Ana"}}, "paused": True}}


@dataclass
class _IndexedShelf:
    items: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict, metadata=INTERNAL)


def test_an_internal_field_is_kept_and_exported_but_not_dumped() -> None:
    state = SandboxState()
    state.bucket("shop", _IndexedShelf).by_name["Ana"] = "i1"
    assert state.dump() == {"shop": {"items": {}}}
    other = SandboxState()
    other.restore(state.export())
    assert other.bucket("shop", _IndexedShelf).by_name == {"Ana": "i1"}


def test_an_export_restores_objects_sequences_and_counters_in_another_state() -> None:
    state = SandboxState()
    state.bucket("shop", _Shelf).items["i1"] = {"name": "Ana"}
    state.next_id("shop", "item")
    state.created("shop", "item")
    other = SandboxState()
    other.restore(state.export())
    assert other.bucket("shop", _Shelf).items == {"i1": {"name": "Ana"}}
    assert (other.counters(), other.next_id("shop", "item")) == ({"shop": {"item": 1}}, 2)


def test_a_broken_export_is_refused_and_the_state_is_kept() -> None:
    state = SandboxState()
    state.created("shop", "item")
    with pytest.raises(ValueError, match="not a sandbox state export"):
        state.restore(b"not pickled")
    assert state.counters() == {"shop": {"item": 1}}


def test_effective_credentials_overlay_overrides_on_the_defaults() -> None:
    sandbox = Sandbox(credentials={"asaas": {"api_key": "mine"}})
    sandbox.default_credentials["asaas"] = {"api_key": "default", "webhook_token": "t"}
    assert sandbox.effective_credentials() == {"asaas": {"api_key": "mine", "webhook_token": "t"}}


def test_the_same_seed_gives_the_same_random_stream() -> None:
    assert Sandbox(seed=4).random.random() == Sandbox(seed=4).random.random()


def test_every_emulator_shares_the_vendor_emulator_base() -> None:
    """One place for credentials and typed settings (issue 9.6), not six copies."""
    from sandbox.app import VENDOR_MODULES
    from sandbox.core import VendorEmulator

    sandbox = Sandbox()
    from sandbox.app import create_app

    create_app(sandbox)
    assert set(sandbox.emulators) == set(VENDOR_MODULES)
    for vendor, emulator in sandbox.emulators.items():
        assert isinstance(emulator, VendorEmulator)
        assert emulator.vendor == vendor
    sandbox.credentials["asaas"] = {"api_key": "override"}
    assert sandbox.emulators["asaas"].credentials["api_key"] == "override"
    assert "webhook_auth_token" in sandbox.emulators["asaas"].credentials


def test_an_emulator_class_finds_its_own_emulator_in_the_sandbox() -> None:
    from sandbox.app import create_app
    from sandbox.vendors.whatsapp import WhatsAppEmulator

    sandbox = Sandbox()
    create_app(sandbox)
    assert WhatsAppEmulator.of(sandbox) is sandbox.emulators["whatsapp"]
    sandbox.emulators["whatsapp"] = sandbox.emulators["facebook"]
    with pytest.raises(TypeError):
        WhatsAppEmulator.of(sandbox)


def test_settings_are_typed_in_the_bucket_and_plain_json_in_the_dump() -> None:
    from sandbox.app import create_app
    from sandbox.vendors import docusign

    sandbox = Sandbox()
    create_app(sandbox)
    emulator = sandbox.emulators["docusign"]
    assert emulator.signer_settings == docusign.SignerSettings()
    emulator.bucket.signer = docusign.SignerSettings(invalid_cpf_rate=0.5)
    assert sandbox.state.dump()["docusign"]["signer"] == {"invalid_cpf_rate": 0.5}
    assert emulator.signer_settings.invalid_cpf_rate == 0.5
    assert emulator.limits == docusign.DocuSignLimits()
