"""The Great Expectations suite for the lead table, and the one GX context that runs it.

Second step of the quality gate: after data_quality.gate has normalised a batch, this suite
judges it. Each expectation carries the stable rule name it enforces in `meta["rule"]`; a
quarantined lead's reasons are those names, read from GX's per-row results
(`unexpected_index_column_names=["lead_id"]`), never from a parallel hand-written check.

The columns the suite reads (built by data_quality.gate):
    lead_id                              the row's identity in the per-row results
    full_name, email, phone_number,      what the person typed, blank → null
    cpf, cnpj
    email_normalized, phone_e164,        the normalised values (null when absent or invalid),
    cpf_normalized, cnpj_normalized      for uniqueness and reachability
    not_text                             which fields held no text, and why (null: none)

Great Expectations is imported on first use (2-3 s) and its ephemeral context is built once
per process, with progress bars off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_quality.offline_docs import make_data_docs_offline
from leadflow.runtime import in_flow_run_process, settle_startup_heap

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations.expectation import Expectation

SUITE_NAME = "leadflow_leads"
ROW_ID = "lead_id"
DOCS_SITE = "leadflow"


@dataclass(frozen=True)
class Rule:
    """One rule of the gate: its stable name (a quarantine reason), what it means, and the
    expectation that enforces it. `keep_first` marks uniqueness rules: GX flags every member
    of a duplicate group; the gate keeps the first and quarantines the others."""

    name: str
    description: str
    expectation: Callable[[], Expectation]
    keep_first_of: str | None = None


def _rules() -> tuple[Rule, ...]:
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    from data_quality import expectations as leadflow

    ex = gx.expectations
    expectations: dict[str, Callable[[], Expectation]] = {
        "value_not_text": lambda: ex.ExpectColumnValuesToBeNull(column="not_text"),
        "full_name_present": lambda: ex.ExpectColumnValuesToNotBeNull(column="full_name"),
        "full_name_valid": lambda: leadflow.ExpectColumnValuesToBeValidPersonName(
            column="full_name"
        ),
        "email_valid": lambda: leadflow.ExpectColumnValuesToBeValidEmail(column="email"),
        "phone_valid_br": lambda: leadflow.ExpectColumnValuesToBeValidBrazilianPhone(
            column="phone_number"
        ),
        "contact_present": lambda: leadflow.ExpectLeadToBeReachable(
            column_list=["email_normalized", "phone_e164"]
        ),
        "phone_is_mobile": lambda: leadflow.ExpectColumnValuesToBeBrazilianMobileE164(
            column="phone_e164", row_condition=Column("email_normalized").is_null()
        ),
        "cpf_valid": lambda: leadflow.ExpectColumnValuesToBeValidCpf(column="cpf"),
        "cnpj_valid": lambda: leadflow.ExpectColumnValuesToBeValidCnpj(column="cnpj"),
    }
    rules = [Rule(name, RULE_DESCRIPTIONS[name], make) for name, make in expectations.items()]
    # uniqueness: GX flags every member of a duplicate group; the gate keeps the first
    for name, column in UNIQUE_COLUMNS.items():
        rules.append(
            Rule(
                name,
                RULE_DESCRIPTIONS[name],
                partial(ex.ExpectColumnValuesToBeUnique, column=column),
                keep_first_of=column,
            )
        )
    return tuple(rules)


UNIQUE_COLUMNS: dict[str, str] = {
    "email_unique_in_batch": "email_normalized",
    "phone_unique_in_batch": "phone_e164",
    "cpf_unique_in_batch": "cpf_normalized",
    "cnpj_unique_in_batch": "cnpj_normalized",
}
"""Each uniqueness-in-batch rule and the normalised column it compares."""


RULE_DESCRIPTIONS: dict[str, str] = {
    "value_not_text": "every field holds text (or a number): not an object, list, bytes or "
    "true/false, no NUL or non-UTF-8 byte, at most 1,000 characters",
    "full_name_present": "a name was given",
    "full_name_valid": "the name has letters and no digits or markup-like punctuation",
    "email_valid": "an e-mail, when given, is a valid address",
    "phone_valid_br": "a phone, when given, is a valid Brazilian number (nothing guessed)",
    "contact_present": "a valid e-mail or a Brazilian mobile to reach the person",
    "phone_is_mobile": "without an e-mail, the phone must be a mobile (WhatsApp cannot reach "
    "a landline)",
    "cpf_valid": "a CPF, when given, has valid check digits and is not a repeated digit",
    "cnpj_valid": "a CNPJ, when given, has valid check digits",
    "email_unique_in_batch": "no earlier lead of the batch has the same e-mail",
    "phone_unique_in_batch": "no earlier lead of the batch has the same phone",
    "cpf_unique_in_batch": "no earlier lead of the batch has the same CPF",
    "cnpj_unique_in_batch": "no earlier lead of the batch has the same CNPJ",
}
"""Every rule of the gate and what it means, in the order reasons are reported."""

RULE_NAMES: tuple[str, ...] = tuple(RULE_DESCRIPTIONS)
"""Every reason a lead can be quarantined for, in the order they are reported."""

UNIQUENESS_RULES: frozenset[str] = frozenset(n for n in RULE_NAMES if n.endswith("_in_batch"))


@dataclass
class GateSuite:
    """The process's GX context with the lead table's data source, suite and rules."""

    context: AbstractDataContext
    batch_definition: BatchDefinition
    suite: ExpectationSuite
    rules: dict[str, Rule]


#: GX's context is shared by the process and not safe across threads: its pandas engine holds
#: one loaded batch per batch id, and every gate's batch has the same id, so two validations at
#: once (the webhook path's gate and the reconciler's, each in a worker thread) each judged the
#: other's rows. Building the context, validating and writing Data Docs all hold this lock.
_lock = threading.RLock()
_gate_suite: GateSuite | None = None


def gate_suite() -> GateSuite:
    """The GX context, built once per process (building it and importing GX cost seconds)."""
    global _gate_suite
    with _lock:
        if _gate_suite is None:
            _gate_suite = _build()
            if in_flow_run_process():
                # GX's objects live as long as this process, like the imports' (leadflow/runtime.py)
                settle_startup_heap()
        return _gate_suite


def _build() -> GateSuite:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # no temporary Data Docs site (GX's ephemeral default leaves a temp folder per process):
    # Data Docs go where settings.data_docs_dir says, when asked for (write_data_docs)
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
        ),
    )
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("leads")
        .add_dataframe_asset("leads")
        .add_batch_definition_whole_dataframe("batch")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    rules = _rules()
    if tuple(rule.name for rule in rules) != RULE_NAMES:
        raise RuntimeError("data_quality.suite: RULE_NAMES and the rules disagree")
    for rule in rules:
        expectation = rule.expectation()
        expectation.meta = {"rule": rule.name, "description": rule.description}
        expectation.description = f"{rule.name}: {rule.description}"
        suite.add_expectation(expectation)
    return GateSuite(context, batch_definition, suite, {rule.name: rule for rule in rules})


def failing_rows(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Validate `frame` with the suite: rule name → the `lead_id`s of the rows that broke it,
    as GX reports them (uniqueness: every member of a duplicate group)."""
    gate = gate_suite()
    with _lock:
        batch = gate.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(
            gate.suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_ID],
                "return_unexpected_index_query": False,
            },
        )
    failing: dict[str, list[Any]] = {name: [] for name in RULE_NAMES}
    for outcome in result.results:
        # validate() sets each result's configuration; the None is for hand-made results
        assert outcome.expectation_config is not None
        rule = outcome.expectation_config.meta["rule"]
        message = _exception_message(outcome.exception_info)
        if message is not None:
            raise RuntimeError(f"expectation for rule {rule!r} could not run: {message}")
        if outcome.success:
            continue
        rows = outcome.result.get("unexpected_index_list")
        if rows is None:
            # failed without naming rows: reading that as "no row failed" would let the whole
            # batch through a rule it broke
            raise RuntimeError(f"expectation for rule {rule!r} failed without per-row results")
        failing[rule] = [row[ROW_ID] for row in rows]
    return failing


def _exception_message(info: dict[str, Any] | None) -> str | None:
    """The message of an exception GX caught while running an expectation, or None.

    GX reports it in two shapes: flat (`{"raised_exception": True, "exception_message": ...}`)
    when the expectation itself raised, and keyed by metric configuration
    (`{"MetricConfigurationID(...)": {"raised_exception": True, ...}}`) when one of its
    metrics did — a custom metric's crash comes in the second shape with `success=False` and
    no rows, which must not read as a clean batch."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for nested in info.values():
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return str(nested.get("exception_message"))
    return None


def write_data_docs(frame: pd.DataFrame, directory: Path) -> Path:
    """Validate `frame` again through a checkpoint that updates the Data Docs in `directory`,
    and return the index page.

    The docs show counts and percentages per rule but no failing value
    (`partial_unexpected_count=0`): they are plain files anyone with the folder can read, and
    personal data stays out of them (DESIGN.md, principle 9). GX's pages load Bootstrap,
    jQuery and Vega from public CDNs; they are pointed at copies shipped with leadflow
    (`make_data_docs_offline`), so the folder reads the same offline.
    """
    import great_expectations as gx

    gate = gate_suite()
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _lock:
        sites = gate.context.get_site_names()
        if DOCS_SITE in sites:
            gate.context.delete_data_docs_site(DOCS_SITE)
        gate.context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(directory),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        try:
            checkpoint = gate.context.checkpoints.get("leadflow_gate")
        except Exception:  # GX raises its own DataContextError subclasses for "not found"
            definition = gate.context.validation_definitions.add(
                gx.ValidationDefinition(
                    name="leadflow_gate", data=gate.batch_definition, suite=gate.suite
                )
            )
            checkpoint = gate.context.checkpoints.add(
                gx.Checkpoint(
                    name="leadflow_gate",
                    validation_definitions=[definition],
                    actions=[
                        gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])
                    ],
                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
                )
            )
    checkpoint.run(batch_parameters={"dataframe": frame})
    make_data_docs_offline(directory)
    return directory / "index.html"
