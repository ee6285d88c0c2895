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
from data_quality.normalize import (
    Normalized,
    normalize_cnpj,
    normalize_cpf,
    normalize_email,
    normalize_name,
    normalize_phone,
    phone_kind,
)

if TYPE_CHECKING:
    from pathlib import Path

ROW_ID = "lead_id"
REASONS = "reasons"

NORMALISERS: dict[str, Callable[[str | None], Normalized]] = {
    "full_name": normalize_name,
    "email": normalize_email,
    "phone_number": normalize_phone,
    "cpf": normalize_cpf,
    "cnpj": normalize_cnpj,
}

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
    `lead_id`, the lead fields as given, the other input columns, and `reasons` (rule names in
    the suite's order). `counts` holds every rule, zero included.
    """

    clean: pd.DataFrame
    quarantined: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.clean) + len(self.quarantined)


def _as_text(value: Any) -> str | None:
    """What the person typed, as text; blank → None (a blank answer is a missing answer)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet turned a phone or CPF into a number
    text = str(value).strip()
    return text or None


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
    """The table the suite validates, and each lead field's normalised values."""
    suite_frame = pd.DataFrame({ROW_ID: frame[ROW_ID].to_numpy()})
    normalised: dict[str, np.ndarray] = {}
    for lead_field, normaliser in NORMALISERS.items():
        column = (
            frame[lead_field] if lead_field in frame.columns else pd.Series([None] * len(frame))
        )
        given, values = _normalise_column(column, normaliser)
        suite_frame[lead_field] = pd.Series(given, dtype=object)
        suite_frame[NORMALIZED_COLUMN[lead_field]] = pd.Series(values, dtype=object)
        normalised[lead_field] = values
    return suite_frame, normalised


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
    for lead_field in LEAD_FIELDS:
        quarantined[lead_field] = pd.Series(
            suite_frame[lead_field].to_numpy()[quarantined_mask], index=quarantined.index
        )
    quarantined[REASONS] = [reasons[i] for i in quarantined[ROW_ID]]
    quarantined = quarantined.astype(dict.fromkeys(LEAD_FIELDS, object))
    quarantined = quarantined.where(quarantined.notna(), None).reset_index(drop=True)
    return GateResult(clean=clean, quarantined=quarantined, counts=counts)


def _zero_counts() -> dict[str, int]:
    from data_quality.suite import RULE_NAMES

    return dict.fromkeys(RULE_NAMES, 0)
