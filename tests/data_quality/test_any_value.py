"""Whatever a webhook or a spreadsheet puts in a lead field, the gate decides that lead alone.

A value that is not text (an object, a list, bytes, a set, true/false, a lone surrogate, NUL,
a million characters, an infinity) quarantines its own row with `value_not_text`; it never
stops the batch or changes what happens to the leads beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_quality import LEAD_FIELDS, split_leads, suite

GOOD = [
    {"full_name": "Ana Souza", "email": "ana@exemplo.com.br", "phone_number": "(11) 98765-4321"},
    {"full_name": "Bia Lima", "email": "bia@exemplo.com.br", "cpf": "529.982.247-25"},
]
ODD_ROW_BASE = {"full_name": "Caio Dias", "email": "caio@exemplo.com.br"}

ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
"""Any text, lone surrogates and NUL included (what a lenient JSON parser can produce)."""

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(ANY_TEXT, children, max_size=3)
    ),
    max_leaves=6,
)
"""Any JSON value, NaN and infinities included."""

JSON_CONTAINERS = st.lists(JSON, max_size=3) | st.dictionaries(ANY_TEXT, JSON, max_size=3)
"""Any JSON array or object, holding anything."""


def _more_digits_than_repr_allows() -> int:
    """10**5000: past Python's 4,300-digit limit for int-to-text, so it cannot sit in a
    sampled_from list, whose repr Hypothesis may print (and then fail on)."""
    return 10**5000


TYPED = (
    st.builds(_more_digits_than_repr_allows)
    | st.sampled_from(
        [
            0,
            -1,
            11987654321,
            52998224725,
            10**40,
            0.5,
            11987654321.0,
            math.nan,
            math.inf,
            -math.inf,
            1e300,
            "",
            " ",
            "Ana",
            "ana@",
            "ana@exemplo.com.br",
            "(11) 98765-4321",
            "529.982.247-25",
            "Ana \udcff",
            "Ana\x00Souza",
            "a" * 1_000_001,
            b"\xff\xfe",
            {"a", "b"},
            ("tuple",),
        ]
    )
    | st.text(alphabet=st.sampled_from("a@1 \x00\udcff"), max_size=1)
)
"""What a person, a spreadsheet or a Python caller puts in one field: numbers, text of every
kind, and what JSON cannot carry (bytes, sets, huge text and numbers)."""

ANY_VALUE = st.none() | st.booleans() | TYPED | JSON_CONTAINERS
"""Any value at all. Top-level scalars come from TYPED's few, as each distinct readable one is
a distinct table for GX to validate (about 0.1 s each; arbitrary text and numbers go through
the gate in test_split_table's property), while containers of anything, however deep, are
all the same `value_not_text` row to it."""


@pytest.fixture(scope="module", autouse=True)
def gx_once_per_distinct_table() -> Iterator[dict[tuple[Any, ...], Any]]:
    """GX costs about 0.1 s a validation whatever the batch: it runs once per distinct table
    the suite is shown (it is deterministic), so 200 examples fit in seconds. Every distinct
    table is still validated by the real suite; most examples differ only inside a list or an
    object, which the suite sees as the same `value_not_text` row."""
    real = suite.failing_rows
    seen: dict[tuple[Any, ...], dict[str, list[Any]]] = {}

    def memoised(frame: pd.DataFrame) -> dict[str, list[Any]]:
        key = tuple(frame.itertuples(index=False, name=None))
        if key not in seen:
            seen[key] = real(frame)
        return seen[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(suite, "failing_rows", memoised)
        yield seen


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(field=st.sampled_from(LEAD_FIELDS), value=ANY_VALUE)
def test_any_value_in_any_field_decides_only_its_own_row(field: str, value: Any) -> None:
    rows = [*GOOD, {**ODD_ROW_BASE, field: value}]

    result = split_leads(rows)

    clean = list(result.clean["lead_id"])
    quarantined = list(result.quarantined["lead_id"])
    assert sorted(clean + quarantined) == [1, 2, 3]  # every row lands, and only once
    assert clean[:2] == [1, 2]  # the good leads beside it are untouched
    assert all(len(reasons) > 0 for reasons in result.quarantined["reasons"])
    if isinstance(value, dict | list | set | tuple | bytes | bool):
        assert quarantined == [3]
        assert "value_not_text" in result.quarantined["reasons"][0]
        assert result.quarantined[field][0].startswith("[not text: ")


def test_the_property_reached_gx_with_many_different_tables(
    gx_once_per_distinct_table: dict[tuple[Any, ...], Any],
) -> None:
    """The memo above must not hide GX: the property's examples showed it many tables."""
    if not gx_once_per_distinct_table:  # this test was selected alone
        test_any_value_in_any_field_decides_only_its_own_row()
    assert len(gx_once_per_distinct_table) >= 30


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"v": 1}, "an object, not text"),
        (["x"], "a list, not text"),
        (b"x", "bytes, not text"),
        (True, "true/false, not text"),
        ("Ana \udcff", "holds a NUL character or bytes that are not UTF-8"),
        ("a" * 1001, "longer than 1,000 characters"),
    ],
)
def test_the_quarantined_row_says_which_field_held_what(value: Any, why: str) -> None:
    result = split_leads([{**ODD_ROW_BASE, "email": value}, GOOD[0]])

    assert list(result.clean["lead_id"]) == [2]
    assert result.quarantined["not_text"][0] == f"email: {why}"
    assert result.quarantined["email"][0] == f"[not text: {why}]"
