"""Custom Great Expectations for what GX cannot say on its own about a Brazilian lead.

Part of the quality gate's suite (data_quality.suite): CPF and CNPJ check digits, a person's
name, an e-mail's syntax, a Brazilian phone, a Brazilian E.164 mobile, and "reachable" (an
e-mail or a mobile). Each follows GX's documented ColumnMap/MulticolumnMap expectation +
metric provider pattern (the column ones built by one factory, `column_expectation`), so its
failing rows come back in GX's per-row results like any built-in expectation's. The metrics
call the cached normalisers once per distinct value.

Importing this module imports Great Expectations (2-3 s): only data_quality.suite does, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics import ColumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
    multicolumn_condition_partial,
)

# from its own module: the package re-exports it under the name of that module, which mypy
# then takes for the module
from great_expectations.expectations.metrics.map_metric_provider.column_condition_partial import (
    column_condition_partial,
)

from data_quality.normalize import NORMALISERS, Normalized, is_brazilian_mobile


def passes(column: pd.Series, check: Callable[[str], bool]) -> pd.Series:
    """`check` applied once per distinct value, mapped back onto the column."""
    verdicts = {value: check(value) for value in column.dropna().unique()}
    return column.map(verdicts).eq(True)


def _normaliser_accepts(normaliser: Callable[[str], Normalized]) -> Callable[[str], bool]:
    return lambda value: normaliser(value).ok


def column_expectation(
    name: str, metric: str, check: Callable[[str], bool], doc: str
) -> type[ColumnMapExpectation]:
    """A column expectation `name` whose rows pass when `check` accepts their value, with the
    metric provider behind it: GX's documented ColumnMap pattern, written once.

    GX registers both classes when they are created (the metric under `metric`, the
    expectation under `name` in snake case), so the suite refers to the expectation by the
    class returned here like any built-in one.
    """

    def _pandas(cls: type, column: pd.Series, **kwargs: Any) -> pd.Series:
        return passes(column, check)

    type(
        f"{name.removeprefix('Expect')}Metric",
        (ColumnMapMetricProvider,),
        {
            "__module__": __name__,
            "condition_metric_name": metric,
            "_pandas": column_condition_partial(engine=PandasExecutionEngine)(_pandas),
        },
    )
    return type(
        name,
        (ColumnMapExpectation,),
        {
            "__module__": __name__,
            "__doc__": doc,
            "map_metric": metric,
            "success_keys": ("mostly",),
        },
    )


ExpectColumnValuesToBeValidCpf = column_expectation(
    "ExpectColumnValuesToBeValidCpf",
    "column_values.leadflow_valid_cpf",
    _normaliser_accepts(NORMALISERS["cpf"]),
    "Each CPF has 11 digits, correct check digits, and is not one digit repeated.",
)
ExpectColumnValuesToBeValidCnpj = column_expectation(
    "ExpectColumnValuesToBeValidCnpj",
    "column_values.leadflow_valid_cnpj",
    _normaliser_accepts(NORMALISERS["cnpj"]),
    "Each CNPJ (numeric or alphanumeric) has 14 characters and correct check digits.",
)
ExpectColumnValuesToBeValidPersonName = column_expectation(
    "ExpectColumnValuesToBeValidPersonName",
    "column_values.leadflow_valid_person_name",
    _normaliser_accepts(NORMALISERS["full_name"]),
    "Each name has letters and no digits or markup-like punctuation.",
)
ExpectColumnValuesToBeValidEmail = column_expectation(
    "ExpectColumnValuesToBeValidEmail",
    "column_values.leadflow_valid_email",
    _normaliser_accepts(NORMALISERS["email"]),
    "Each e-mail address is syntactically valid (email-validator, no DNS).",
)
ExpectColumnValuesToBeValidBrazilianPhone = column_expectation(
    "ExpectColumnValuesToBeValidBrazilianPhone",
    "column_values.leadflow_valid_br_phone",
    _normaliser_accepts(NORMALISERS["phone_number"]),
    "Each phone is a valid Brazilian number (mobile or landline), nothing guessed.",
)
ExpectColumnValuesToBeBrazilianMobileE164 = column_expectation(
    "ExpectColumnValuesToBeBrazilianMobileE164",
    "column_values.leadflow_br_mobile_e164",
    is_brazilian_mobile,
    "Each E.164 number is a Brazilian mobile: the only kind WhatsApp reaches.",
)


class LeadIsReachable(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.leadflow_reachable"
    condition_domain_keys = (
        "batch_id",
        "table",
        "column_list",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    )

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:  # noqa: N805 (GX makes it a classmethod)
        email, phone = column_list.columns[0], column_list.columns[1]
        return column_list[email].notna() | passes(column_list[phone], is_brazilian_mobile)


class ExpectLeadToBeReachable(MulticolumnMapExpectation):
    """column_list = [normalised e-mail, E.164 phone]: each lead has a valid e-mail or a
    Brazilian mobile, so someone can reach the person. Rows missing both are failures, not
    skipped (ignore_row_if="never")."""

    map_metric = "multicolumn_values.leadflow_reachable"
    success_keys = ("mostly",)
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
    library_metadata: ClassVar[dict[str, Any]] = {"tags": ["leadflow"], "contributors": []}
