"""Every deployment leadflow has, defined once: its flow, schedule, parameters and tags.

Both ways of running leadflow in production read this table: `prefect.yaml` (a process work
pool, any number of workers; a test keeps the file in step with this module, and
`python -m deployments.schedules` rewrites it) and `python -m deployments.serve` (one machine,
no work pool). Schedules need a running `prefect server start`: the temporary server Prefect
starts on its own refuses them (../shared/LIBRARIES.md).

The webhook service triggers `handle-deliveries/handle-deliveries` with `run_deployment`; the
stage deployments without a schedule are there for people and scripts (`prefect deployment run
billing/billing`), the reconciler already runs every stage every minute.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEPLOYMENTS",
    "PROJECT_NAME",
    "TIMEZONE",
    "WORK_POOL",
    "DeploymentSpec",
    "by_name",
    "prefect_yaml",
    "write_prefect_yaml",
]

PROJECT_NAME = "leadflow"
#: the process work pool every worker polls (`prefect worker start --pool leadflow-pool`)
WORK_POOL = "leadflow-pool"
#: nightly jobs run at night in Brazil, whatever the server's clock says
TIMEZONE = "America/Sao_Paulo"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, when it runs on its own (if ever), with what."""

    flow_name: str
    entrypoint: str  # path/to/file.py:function, relative to the repository root
    description: str
    interval_seconds: int | None = None
    cron: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The deployment's name: the flow's own, so every deployment is `<flow>/<flow>`."""
        return self.flow_name

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def schedules(self) -> list[dict[str, Any]]:
        """The schedule as prefect.yaml writes it (empty: runs only when triggered)."""
        if self.interval_seconds is not None:
            return [{"interval": self.interval_seconds, "timezone": TIMEZONE}]
        if self.cron is not None:
            return [{"cron": self.cron, "timezone": TIMEZONE}]
        return []

    def load_flow(self) -> Any:
        """The Prefect flow object behind the entrypoint (imported, not run)."""
        path, function = self.entrypoint.split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, function)


def _stage(stage: str, description: str, *vendors: str) -> DeploymentSpec:
    """A journey stage's deployment (flows/stages.py): run when triggered, never on a schedule of
    its own (the reconciler runs every stage each minute), tagged with the vendors it calls."""
    return DeploymentSpec(
        stage, f"flows/stages.py:{stage}", description, tags=("leadflow", "stage", *vendors)
    )


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "intake",
        "flows/stages.py:intake",
        "Poll every configured Facebook lead form; new leads through the gate into Pipedrive.",
        interval_seconds=5 * 60,
        parameters={"poll": True},
        tags=("leadflow", "poll", "facebook", "pipedrive"),
    ),
    DeploymentSpec(
        "lead-to-cash",
        "flows/reconciler.py:lead_to_cash",
        "The reconciler: stored webhook deliveries applied, then every journey due advanced once.",
        interval_seconds=60,
        tags=("leadflow", "reconciler"),
    ),
    DeploymentSpec(
        "quarantine-report",
        "flows/quarantine_report.py:quarantine_report",
        "Nightly count of open quarantine records by rule; alerts past the threshold.",
        cron="0 6 * * *",
        tags=("leadflow", "report", "quarantine"),
    ),
    DeploymentSpec(
        "handle-deliveries",
        "flows/reconciler.py:handle_deliveries",
        "Triggered by the webhook service (run_deployment) for each stored delivery.",
        tags=("leadflow", "webhook"),
    ),
    DeploymentSpec(
        "replay-quarantine",
        "flows/reconciler.py:replay_quarantine",
        "Corrected quarantine records back through the gate (run by a person).",
        tags=("leadflow", "quarantine", "manual"),
    ),
    _stage(
        "deals", "Qualified leads into Pipedrive; open deals read for their outcome.", "pipedrive"
    ),
    _stage(
        "contracts",
        "Won deals get a DocuSign contract; sent contracts read for a signature.",
        "docusign",
    ),
    _stage(
        "billing",
        "Signed contracts get an Asaas PIX charge sent by WhatsApp; open charges read.",
        "asaas",
        "whatsapp",
    ),
    _stage(
        "activation", "Paid clients get their Hostinger website, polled until live.", "hostinger"
    ),
    _stage(
        "welcome",
        "Live clients welcomed on WhatsApp; the deal gets a note with every vendor id.",
        "whatsapp",
        "pipedrive",
    ),
)


def by_name(name: str) -> DeploymentSpec:
    """The deployment called `name` (a flow name); KeyError names the ones that exist."""
    for spec in DEPLOYMENTS:
        if spec.name == name:
            return spec
    raise KeyError(f"no deployment {name!r}; known: {', '.join(s.name for s in DEPLOYMENTS)}")


def prefect_yaml() -> dict[str, Any]:
    """prefect.yaml as data: every deployment on the process work pool.

    There is no pull step: `prefect deploy` records the folder it runs from, and each worker
    runs the flow from that folder on its own machine (leadflow installed at the same path on
    every worker machine; docs/scaling.md). A git_clone pull step is the alternative.
    """
    return {
        "name": PROJECT_NAME,
        "prefect-version": "3.9.1",
        "build": None,
        "push": None,
        "deployments": [
            {
                "name": spec.name,
                "description": spec.description,
                "entrypoint": spec.entrypoint,
                "parameters": dict(spec.parameters),
                "tags": list(spec.tags),
                "schedules": spec.schedules(),
                "work_pool": {"name": WORK_POOL, "work_queue_name": "default"},
            }
            for spec in DEPLOYMENTS
        ],
    }


HEADER = (
    "# Generated from deployments/schedules.py (python -m deployments.schedules); do not edit:\n"
    "# a test fails when the two disagree. Deploy with `prefect deploy --all` from this folder.\n"
    "# Workers (same checkout path on every machine): prefect worker start --pool leadflow-pool\n"
)


def write_prefect_yaml(path: Path = REPO_ROOT / "prefect.yaml") -> Path:
    """Rewrite prefect.yaml from the table above."""
    import yaml

    path.write_text(HEADER + yaml.safe_dump(prefect_yaml(), sort_keys=False, width=100))
    return path


if __name__ == "__main__":
    print(write_prefect_yaml())
