"""How hard the fuzz tests hunt: bounded for CI by default, LEADFLOW_FUZZ_EXAMPLES=5000 for a
longer hunt (one variable for every fuzz test, each with its own default for its cost)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from hypothesis import HealthCheck, settings


def fuzz_settings(
    default_examples: int, *, suppress: Iterable[HealthCheck] = (HealthCheck.too_slow,)
) -> settings:
    """Hypothesis settings for a fuzz test: LEADFLOW_FUZZ_EXAMPLES examples (`default_examples`
    when unset), no deadline (a slow example is not a failure), `suppress`ed health checks."""
    examples = int(os.environ.get("LEADFLOW_FUZZ_EXAMPLES", str(default_examples)))
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(suppress))
