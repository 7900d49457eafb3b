"""What an analyst query may touch, decided on ClickHouse's own parse of it. Pure: no I/O.

`AnalystQueries` (projections/analyst_queries.py) asks ClickHouse three things about a
query before it runs it, and these rules read the answers:
1. `formatQuerySingleLine(sql)`: the query parsed as data and printed back in one
   canonical line (one statement, no comments). It is then only ever run as the subquery
   of `SELECT * FROM (...)`, where ClickHouse's grammar has no `INTO OUTFILE`, `FORMAT` or
   statement other than a SELECT: such a query fails to parse instead of writing a file.
2. `EXPLAIN AST` of that form: every function and every name the query uses
   (`names_in_ast`), before anything is evaluated (`check_ast`). The analyzer folds
   constants and runs scalar subqueries while it analyses, so `file('/etc/passwd')` would
   be read, and `(SELECT groupArray(name) FROM system.tables)` run, during an EXPLAIN
   QUERY TREE, whose output then shows neither. Names are refused by their first part: a
   name that starts with another database's name (`system.`, `INFORMATION_SCHEMA.`) is
   refused wherever it stands, even where it would have been a column (`t.x` under an
   alias `system`): ambiguity refuses, it never lets through.
3. `EXPLAIN QUERY TREE` of it: every table and table function it reads, resolved
   (`sources_in_query_tree`), as a second look once the first found nothing.
The session runs with `readonly=1` besides (no writes, no settings changed, most outward
table functions refused by ClickHouse itself); these rules are the allow-lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Table functions that make rows from their arguments alone; every other one (file, url,
# s3, remote, merge, executable, input, mysql, ...) reaches beyond the database.
TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "generate_series", "generateSeries", "values", "null", "zeros"}
)
_ALLOWED = frozenset(f.lower() for f in TABLE_FUNCTIONS)
# ClickHouse reads `SELECT 1` from this one-row table.
SYSTEM_TABLES = frozenset({"system.one"})
# Functions that read the host, the server's configuration or another store.
HOST_FUNCTIONS = frozenset(
    {
        "file",
        "getserversetting",
        "getmacro",
        "filesystemavailable",
        "filesystemcapacity",
        "filesystemunreserved",
        "showcertificate",
        "catboostevaluate",
        "generateserialid",
        "hascolumnintable",
        "joinget",
        "joingetornull",
        "getclienthttpheader",
    }
)
_HOST_PREFIXES = ("dictget", "dicthas", "dictisin")

_FUNCTION = re.compile(r"^\s*Function (\w+)")
_NAME = re.compile(r"^\s*(?:Table)?Identifier (.+?)(?: \(alias .*)?$")
_TABLE = re.compile(r"\btable_name: ([^,\s]+)")
_TABLE_FUNCTION = re.compile(r"\btable_function_name: (\w+)")


@dataclass(frozen=True)
class Refusal:
    """Why a query may not run; `reason` is machine-readable."""

    reason: str
    message: str


def wrapped(canonical: str) -> str:
    """The only form an analyst query runs in (and is explained in)."""
    return f"SELECT * FROM ({canonical})"


def names_in_ast(lines: list[str]) -> tuple[set[str], set[str]]:
    """(functions, identifiers) in `EXPLAIN AST` output: every function node (table
    functions included) and every name (`db.table`, `alias.column`, `column`, ...)."""
    functions = {m.group(1) for line in lines if (m := _FUNCTION.match(line))}
    names = {m.group(1) for line in lines if (m := _NAME.match(line))}
    return functions, names


def check_ast(
    functions: set[str],
    names: set[str],
    database: str,
    databases: frozenset[str],
    table_functions: frozenset[str],
) -> Refusal | None:
    """Refuse host functions, table functions not allowed, and names that start with
    another database's name (`databases`: every database the server has)."""
    if refusal := check_functions(functions):
        return refusal
    foreign_functions = sorted(
        f for f in functions if f.lower() in table_functions and f.lower() not in _ALLOWED
    )
    if foreign_functions:
        return _table_function_refusal(foreign_functions)
    others = databases - {database}
    outside = sorted(n for n in names if n.split(".", 1)[0] in others and "." in n)
    if outside:
        return _outside_refusal(outside, database)
    return None


def sources_in_query_tree(lines: list[str]) -> tuple[set[str], set[str]]:
    """(tables as `db.table`, table function names) in `EXPLAIN QUERY TREE` output."""
    tables: set[str] = set()
    table_functions: set[str] = set()
    for line in lines:
        if m := _TABLE.search(line):
            tables.add(m.group(1))
        if m := _TABLE_FUNCTION.search(line):
            table_functions.add(m.group(1))
    return tables, table_functions


def check_functions(functions: set[str]) -> Refusal | None:
    host = sorted(f for f in functions if _reaches_host(f))
    if host:
        return Refusal(
            "outward_function",
            f"{', '.join(host)} reads outside the database; analyst queries may not use it",
        )
    return None


def check_sources(tables: set[str], table_functions: set[str], database: str) -> Refusal | None:
    outside = sorted(t for t in tables if not _ours(t, database))
    if outside:
        return _outside_refusal(outside, database)
    foreign = sorted(f for f in table_functions if f.lower() not in _ALLOWED)
    if foreign:
        return _table_function_refusal(foreign)
    return None


def _outside_refusal(names: list[str], database: str) -> Refusal:
    return Refusal(
        "outside_database",
        f"{', '.join(names)} is outside the {database} database; "
        "analyst queries read only its tables",
    )


def _table_function_refusal(names: list[str]) -> Refusal:
    return Refusal(
        "table_function",
        f"table function {', '.join(names)} is not allowed; "
        f"allowed: {', '.join(sorted(TABLE_FUNCTIONS))}",
    )


def _reaches_host(function: str) -> bool:
    name = function.lower()
    return name in HOST_FUNCTIONS or name.startswith(_HOST_PREFIXES)


def _ours(table: str, database: str) -> bool:
    return table in SYSTEM_TABLES or table.startswith(f"{database}.")


# ClickHouse's error names for the limits an analyst query runs under, and our setting's.
LIMIT_ERRORS = {
    "TIMEOUT_EXCEEDED": ("max_execution_time", "TRIBUTARY_QUERY_MAX_EXECUTION_S"),
    "MEMORY_LIMIT_EXCEEDED": ("max_memory_usage", "TRIBUTARY_QUERY_MAX_MEMORY_MB"),
    "TOO_MANY_ROWS_OR_BYTES": ("max_result_rows/max_result_bytes", "TRIBUTARY_QUERY_MAX_RESULT_*"),
    "TOO_MANY_ROWS": ("max_result_rows", "TRIBUTARY_QUERY_MAX_RESULT_ROWS"),
    "TOO_MANY_BYTES": ("max_result_bytes", "TRIBUTARY_QUERY_MAX_RESULT_MB"),
}


def limit_hit(error: str) -> tuple[str, str] | None:
    """(ClickHouse limit, our setting) that `error` (a ClickHouse message) names, if any."""
    for name, limit in LIMIT_ERRORS.items():
        if f"({name})" in error:
            return limit
    return None
