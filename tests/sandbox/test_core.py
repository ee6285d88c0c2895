"""The shared state: ids never reused, creations counted, safe under concurrent threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sandbox.core import Sandbox, SandboxState


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
    state.bucket("asaas")["customers"] = {"cus_1": {"name": "Ana"}}
    dump = state.dump()
    dump["asaas"]["customers"]["cus_1"]["name"] = "changed"
    assert state.bucket("asaas")["customers"]["cus_1"]["name"] == "Ana"


def test_reset_forgets_objects_sequences_and_counters() -> None:
    state = SandboxState()
    state.bucket("asaas")["x"] = 1
    state.next_id("asaas", "customer")
    state.created("asaas", "customer")
    state.reset()
    assert (state.dump(), state.counters(), state.next_id("asaas", "customer")) == ({}, {}, 1)


def test_effective_credentials_overlay_overrides_on_the_defaults() -> None:
    sandbox = Sandbox(credentials={"asaas": {"api_key": "mine"}})
    sandbox.default_credentials["asaas"] = {"api_key": "default", "webhook_token": "t"}
    assert sandbox.effective_credentials() == {"asaas": {"api_key": "mine", "webhook_token": "t"}}


def test_the_same_seed_gives_the_same_random_stream() -> None:
    assert Sandbox(seed=4).random.random() == Sandbox(seed=4).random.random()
