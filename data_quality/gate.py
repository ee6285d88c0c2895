"""The split: a batch of leads in, clean rows (normalised) and quarantined rows (with every
rule they broke) out.

This is the gate itself (DESIGN.md, principle 3), usable from Python with neither Prefect nor a
database:

    from data_quality import split_leads
    result = split_leads([{"full_name": "ana souza", "email": "Ana@Ex.com", "phone_number": ...}])
    result.clean          # normalised lead fields, one row per lead that passed
    result.quarantined    # the values as given, plus `reasons`: a list of rule names
    result.counts         # rule name → how many leads broke it

tasks/quality_gate.py wraps it for the ledger (normalised fields, quarantine, journeys,
de-duplication against earlier leads) and the Prefect artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from data_quality.fields import LEAD_FIELDS, FieldMapping
from data_quality.normalize import NORMALISERS, Normalized, not_text, phone_kind

if TYPE_CHECKING:
    from pathlib import Path

ROW_ID = "lead_id"
REASONS = "reasons"
NOT_TEXT = "not_text"
"""The suite's (and the quarantined table's) column naming, per row, each lead field whose
value is not text and why (`email: a dict, not text`); None when every field is readable."""

#: the suite's column holding each field's normalised value
NORMALIZED_COLUMN = {
    "full_name": "full_name_normalized",
    "email": "email_normalized",
    "phone_number": "phone_e164",
    "cpf": "cpf_normalized",
    "cnpj": "cnpj_normalized",
}


@dataclass
class GateResult:
    """What the gate decided for one batch.

    `clean` has `lead_id`, the five lead fields normalised (None when not given), `phone_kind`
    (mobile / landline) and any other column of the input unchanged. `quarantined` has
    `lead_id`, the lead fields as given, the other input columns, `reasons` (rule names in
    the suite's order) and `not_text` (which fields were not text, and why; None for most
    rows). A field that was not text is shown as `[not text: ...]` rather than as given: it
    may be unstorable (NUL, bytes) or huge, and replayed unfixed it fails its field's rule
    again instead of passing as blank. `counts` holds every rule, zero included.
    """

    clean: pd.DataFrame
    quarantined: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.clean) + len(self.quarantined)


def _as_text(value: Any) -> str | None:
    """What the person typed, as text; blank → None (a blank answer is a missing answer).
    Only values `not_text` accepts get here."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        if float(value).is_integer():
            value = int(value)  # a spreadsheet turned a phone or CPF into a number
    text = str(value).strip()
    return text or None


def _unreadable(column: pd.Series) -> np.ndarray | None:
    """Per row, why the value is not text (None when it is); None for a column without any
    such value. A column of strings (the usual case) is checked once per distinct value; only
    a column mixing types is checked row by row."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return None
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind == "empty":
        return None
    if kind in {"string", "floating", "integer", "mixed-integer-float"}:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        verdicts = [not_text(value) for value in uniques]
        if not any(verdicts):
            return None
        return np.array([*verdicts, None], dtype=object)[codes]
    verdicts = [not_text(value) for value in column]
    return np.array(verdicts, dtype=object) if any(verdicts) else None


def _normalise_column(
    column: pd.Series, normaliser: Callable[[str | None], Normalized]
) -> tuple[np.ndarray, np.ndarray]:
    """(text as given, normalised value) for every row, normalising each distinct value once."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = [_as_text(value) for value in uniques]
    values = [normaliser(text).value for text in texts]
    given = np.array([*texts, None], dtype=object)[codes]
    normalised = np.array([*values, None], dtype=object)[codes]
    return given, normalised


def _as_frame(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]], mapping: FieldMapping | None
) -> pd.DataFrame:
    mapping = mapping or FieldMapping()
    if isinstance(rows, pd.DataFrame):
        frame = rows.rename(columns={c: mapping.lead_field(str(c)) for c in rows.columns})
        if frame.columns.duplicated().any():
            raise ValueError(
                "two input columns map to the same lead field: "
                f"{sorted(set(frame.columns[frame.columns.duplicated()]))}"
            )
    else:
        frame = pd.DataFrame([mapping.map_row(row) for row in rows])
    if ROW_ID not in frame.columns:
        frame.insert(0, ROW_ID, np.arange(1, len(frame) + 1))
    if frame[ROW_ID].isna().any() or frame[ROW_ID].duplicated().any():
        raise ValueError(f"{ROW_ID} must identify each row: it is missing or repeated")
    return frame.reset_index(drop=True)


def build_suite_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The table the suite validates, and each lead field's normalised values.

    A value that is not text reaches neither the normalisers nor GX (a dict is unhashable, a
    lone surrogate cannot be encoded): the suite sees the field as blank, and the `not_text`
    column says which field held what kind of value, for the `value_not_text` rule."""
    suite_frame = pd.DataFrame({ROW_ID: frame[ROW_ID].to_numpy()})
    normalised: dict[str, np.ndarray] = {}
    problems: list[tuple[str, np.ndarray]] = []
    for lead_field, normaliser in NORMALISERS.items():
        column = (
            frame[lead_field].reset_index(drop=True)
            if lead_field in frame.columns
            else pd.Series([None] * len(frame), dtype=object)
        )
        unreadable = _unreadable(column)
        if unreadable is not None:
            column = column.astype(object).copy()
            column[_flagged(unreadable)] = None
            problems.append((lead_field, unreadable))
        given, values = _normalise_column(column, normaliser)
        suite_frame[lead_field] = pd.Series(given, dtype=object)
        suite_frame[NORMALIZED_COLUMN[lead_field]] = pd.Series(values, dtype=object)
        normalised[lead_field] = values
    suite_frame[NOT_TEXT] = pd.Series(_describe_problems(problems, len(frame)), dtype=object)
    return suite_frame, normalised


def _flagged(problems: np.ndarray) -> np.ndarray:
    return np.fromiter((p is not None for p in problems), dtype=bool, count=len(problems))


def _describe_problems(problems: list[tuple[str, np.ndarray]], rows: int) -> list[str | None]:
    """`email: a dict, not text; cpf: true/false, not text` per row; None for a readable row."""
    described: list[str | None] = [None] * rows
    for lead_field, unreadable in problems:
        for position in np.flatnonzero(_flagged(unreadable)):
            entry = f"{lead_field}: {unreadable[position]}"
            current = described[position]
            described[position] = entry if current is None else f"{current}; {entry}"
    return described


def _reasons_by_row(suite_frame: pd.DataFrame) -> tuple[dict[Any, list[str]], dict[str, int]]:
    """Rule names per lead_id from GX's per-row results; for uniqueness rules the first lead
    of each duplicate group (in batch order) is kept, as GX flags every member."""
    from data_quality.suite import RULE_NAMES, gate_suite

    failing = _failing_rows(suite_frame)
    rules = gate_suite().rules
    position = pd.Series(np.arange(len(suite_frame)), index=suite_frame[ROW_ID].to_numpy())
    reasons: dict[Any, list[str]] = {}
    counts: dict[str, int] = dict.fromkeys(RULE_NAMES, 0)
    for name in RULE_NAMES:
        ids = failing[name]
        if not ids:
            continue
        column = rules[name].keep_first_of
        if column is not None:
            flagged = suite_frame.iloc[position.loc[ids].to_numpy()][[ROW_ID, column]]
            flagged = flagged.sort_index()  # batch order
            ids = flagged.loc[flagged[column].duplicated(keep="first"), ROW_ID].tolist()
        counts[name] = len(ids)
        for lead_id in ids:
            reasons.setdefault(lead_id, []).append(name)
    return reasons, counts


def _failing_rows(suite_frame: pd.DataFrame) -> dict[str, list[Any]]:
    from data_quality.suite import failing_rows

    return failing_rows(suite_frame)


def split_leads(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    mapping: FieldMapping | None = None,
    *,
    data_docs_dir: Path | None = None,
) -> GateResult:
    """Normalise, validate and split a batch of leads.

    `rows` is a DataFrame or dicts keyed by lead-form field names (`full_name`, `email`,
    `phone_number`, `cpf`, `cnpj`, or names `mapping` knows). A `lead_id` column, when given,
    identifies rows (it must be unique); otherwise rows are numbered from 1 in input order,
    which is also the order that decides which of two duplicates is kept. With
    `data_docs_dir`, GX Data Docs for this batch are written there.
    """
    frame = _as_frame(rows, mapping)
    suite_frame, normalised = build_suite_frame(frame)
    reasons, counts = _reasons_by_row(suite_frame) if len(frame) else ({}, _zero_counts())
    if data_docs_dir is not None and len(frame):
        from data_quality.suite import write_data_docs

        write_data_docs(suite_frame, data_docs_dir)

    ids = frame[ROW_ID].to_numpy()
    quarantined_mask = np.fromiter((i in reasons for i in ids), dtype=bool, count=len(ids))

    clean = frame.loc[~quarantined_mask].copy()
    for lead_field in LEAD_FIELDS:
        clean[lead_field] = pd.Series(normalised[lead_field][~quarantined_mask], index=clean.index)
    clean["phone_kind"] = clean["phone_number"].map(phone_kind)
    clean = clean.astype(dict.fromkeys([*LEAD_FIELDS, "phone_kind"], object))
    clean = clean.where(clean.notna(), None).reset_index(drop=True)

    quarantined = frame.loc[quarantined_mask].copy()
    problems = suite_frame[NOT_TEXT].to_numpy()[quarantined_mask]
    for lead_field in LEAD_FIELDS:
        quarantined[lead_field] = pd.Series(
            _given_or_placeholder(
                lead_field, suite_frame[lead_field].to_numpy()[quarantined_mask], problems
            ),
            index=quarantined.index,
        )
    quarantined[REASONS] = [reasons[i] for i in quarantined[ROW_ID]]
    quarantined[NOT_TEXT] = pd.Series(problems, index=quarantined.index, dtype=object)
    quarantined = quarantined.astype(dict.fromkeys(LEAD_FIELDS, object))
    quarantined = quarantined.where(quarantined.notna(), None).reset_index(drop=True)
    return GateResult(clean=clean, quarantined=quarantined, counts=counts)


def _given_or_placeholder(lead_field: str, given: np.ndarray, problems: np.ndarray) -> np.ndarray:
    """The text as given, or `[not text: a dict, not text]` where the field held no text."""
    prefix = f"{lead_field}: "
    shown = given.copy()
    for position in np.flatnonzero(_flagged(problems)):
        for entry in str(problems[position]).split("; "):
            if entry.startswith(prefix):
                shown[position] = f"[not text: {entry.removeprefix(prefix)}]"
    return shown


def _zero_counts() -> dict[str, int]:
    from data_quality.suite import RULE_NAMES

    return dict.fromkeys(RULE_NAMES, 0)
