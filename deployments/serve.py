"""`python -m deployments.serve`: every leadflow flow on one machine, on its schedule, no pool.

The one-machine production mode (DESIGN.md, principle 7): one process serves every deployment
of deployments/schedules.py with the same names, schedules, parameters and tags as
prefect.yaml, and runs their flow runs itself. It needs a running `prefect server start`
(PREFECT_API_URL): Prefect's temporary server does not run schedules. Grow past one machine by
switching to the work pool (`prefect deploy --all`, workers): docs/scaling.md.
"""

from __future__ import annotations

from typing import Any

from deployments.schedules import DEPLOYMENTS, TIMEZONE, DeploymentSpec

__all__ = ["runner_deployments", "serve_all"]


def _schedules(spec: DeploymentSpec) -> list[Any]:
    from prefect.schedules import Cron, Interval

    if spec.interval_seconds is not None:
        return [Interval(spec.interval_seconds, timezone=TIMEZONE)]
    if spec.cron is not None:
        return [Cron(spec.cron, timezone=TIMEZONE)]
    return []


def runner_deployments() -> list[Any]:
    """Every deployment as a RunnerDeployment, ready for `serve`."""
    return [
        spec.load_flow().to_deployment(
            name=spec.name,
            schedules=_schedules(spec),
            parameters=dict(spec.parameters),
            tags=list(spec.tags),
            description=spec.description,
        )
        for spec in DEPLOYMENTS
    ]


def serve_all(limit: int | None = None) -> None:
    """Serve every deployment until interrupted; `limit` caps concurrent flow runs."""
    from prefect import serve

    serve(*runner_deployments(), limit=limit)


if __name__ == "__main__":
    serve_all()
