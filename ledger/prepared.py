"""The journey's hottest ledger statements, run on the database driver's own cursor.

Why: a journey step makes two or three ledger calls per vendor call (begin, complete, read an
effect), and SQLAlchemy's execution of an already compiled statement (execution context, cache
key, parameter and result objects, events) is most of their cost: reading one effect took 49 µs
of CPU that way on SQLite and 17 µs this way, completing one 63 and 39 µs (the whole
`begin_effect` went from 111 to 65 µs). A `Prepared` statement is compiled by SQLAlchemy once
per dialect and driver, and each run does only what SQLAlchemy's run would do to the
values: the column types' own bind and result processors (UTC timestamps, escaped JSON), on
the transaction the session already holds, with driver errors turned into SQLAlchemy's (so the
ledger's error handling sees what it always saw). tests/ledger/test_prepared.py holds both ways
to the same rows on SQLite and PostgreSQL.

Only for statements whose parameters are plain bound values (no expanding IN, no literal
rendering): `Prepared` refuses any other at its first run. Unlike SQLAlchemy's, a statement's
parameters are fixed when it is compiled, so an INSERT names its columns (`.values(...)`), and a
call that leaves out a parameter without a value of its own is refused, never sent as NULL.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

__all__ = ["Prepared"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    """A statement as one dialect runs it."""

    sql: str
    #: the parameters' order for a positional paramstyle (qmark), None for a named one
    order: tuple[str, ...] | None
    #: the values the statement holds itself (a caller's value for one of them wins)
    defaults: dict[str, Any]
    #: the parameters every call must give
    required: frozenset[str]
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    results: tuple[Processor, ...]
    row: type[tuple[Any, ...]]


class Prepared:
    """One Core statement (built by `build` for a dialect's name), compiled once per dialect
    and driver and run on the driver's cursor (see the module's docstring)."""

    def __init__(self, build: Callable[[str], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def first(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """The first row the statement returns (a named tuple of its columns), or None."""
        rows = self.all(connection, params)
        return rows[0] if rows else None

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement returns, as named tuples of its columns."""
        dialect = connection.dialect
        compiled = self._compiled.get((dialect.name, dialect.driver))
        if compiled is None:
            statement = self._build(dialect.name)
            compiled = self._compiled[dialect.name, dialect.driver] = _compile(statement, dialect)
        if not compiled.required <= params.keys():
            missing = ", ".join(sorted(compiled.required - params.keys()))
            raise ValueError(f"the statement's parameters {missing} were not given")
        values = {**compiled.defaults, **params}
        for name, process in compiled.binds:
            values[name] = process(values[name])
        arguments: Any = (
            values if compiled.order is None else tuple(values[name] for name in compiled.order)
        )
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, arguments)
            fetched = cursor.fetchall() if cursor.description is not None else []
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(
                compiled.sql,
                arguments,
                error,
                dialect.loaded_dbapi.Error,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
        processors, row = compiled.results, compiled.row
        return [
            row(
                *(
                    value if p is None else p(value)
                    for p, value in zip(processors, raw, strict=True)
                )
            )
            for raw in fetched
        ]


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("Prepared takes plainly bound parameters only")
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("Prepared does not compute column defaults: give every value")
    if getattr(compiled, "escaped_bind_names", None):
        raise ValueError("Prepared takes parameters whose names need no escaping only")
    required = {name for bind, name in compiled.bind_names.items() if bind.required}
    processors = (
        (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
        for bind, name in compiled.bind_names.items()
    )
    # what the database sends back, as the compiler lists it for SQLAlchemy's own results: a
    # SELECT's columns, a write's RETURNING (with any primary key SQLAlchemy adds unasked).
    # Not the statement's `exported_columns`: a copy made by `.returning()` can keep its
    # original's empty one.
    returned = compiled._result_columns
    positional = dialect.paramstyle in ("qmark", "numeric", "format")
    return _Compiled(
        sql=compiled.string,
        order=tuple(compiled.positiontup) if positional else None,
        defaults={
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if name not in required
        },
        required=frozenset(required),
        binds=tuple((name, process) for name, process in processors if process is not None),
        results=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned
        ),
        row=namedtuple("PreparedRow", [column.keyname for column in returned], rename=True),
    )
