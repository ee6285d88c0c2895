"""The deployment table is defined once: prefect.yaml and `serve` agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.schedules import DEPLOYMENTS, WORK_POOL, by_name, prefect_yaml
from tests.deployments.conftest import assert_deployed_as

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_in_step_with_schedules_py() -> None:
    on_disk = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert on_disk == prefect_yaml(), "run: python -m deployments.schedules"


def test_every_flow_is_deployed_once_with_the_agreed_schedules() -> None:
    names = [spec.name for spec in DEPLOYMENTS]
    assert sorted(names) == sorted(
        [
            "intake",
            "deals",
            "contracts",
            "billing",
            "activation",
            "welcome",
            "lead-to-cash",
            "handle-deliveries",
            "replay-quarantine",
            "quarantine-report",
        ]
    )
    assert by_name("intake").interval_seconds == 300
    assert by_name("lead-to-cash").interval_seconds == 60
    assert by_name("quarantine-report").cron == "0 6 * * *"
    assert by_name("handle-deliveries").full_name == "handle-deliveries/handle-deliveries"
    assert by_name("handle-deliveries").schedules() == []
    assert all(d["work_pool"]["name"] == WORK_POOL for d in prefect_yaml()["deployments"])
    with pytest.raises(KeyError, match="known"):
        by_name("nope")


def test_each_entrypoint_is_the_flow_of_that_name() -> None:
    for spec in DEPLOYMENTS:
        assert spec.load_flow().name == spec.flow_name


def test_serve_builds_the_same_deployments() -> None:
    from deployments.serve import runner_deployments

    built = {d.name: d for d in runner_deployments()}
    assert set(built) == {spec.name for spec in DEPLOYMENTS}
    for spec in DEPLOYMENTS:
        deployment = built[spec.name]
        assert deployment.flow_name == spec.flow_name
        assert_deployed_as(deployment, spec)
