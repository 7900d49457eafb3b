"""The analyst-query rules on ClickHouse's own EXPLAIN output (captured from chDB 26.9)."""

from __future__ import annotations

from projections.query_rules import (
    check_ast,
    check_functions,
    check_sources,
    limit_hit,
    names_in_ast,
    sources_in_query_tree,
    wrapped,
)

# EXPLAIN AST SELECT * FROM (SELECT upper(file('/etc/hostname')) AS `Function numbers`)
AST = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Subquery (children 1)
       SelectWithUnionQuery (children 1)
        ExpressionList (children 1)
         SelectQuery (children 1)
          ExpressionList (children 1)
           Function upper (alias Function numbers) (children 1)
            ExpressionList (children 1)
             Function file (children 1)
              ExpressionList (children 1)
               Literal '/etc/hostname'
 Identifier Native""".splitlines()

# EXPLAIN QUERY TREE of a join of a table, a table function and an IN subquery.
TREE = """QUERY id: 0
  JOIN TREE
    JOIN id: 4, strictness: ALL, kind: INNER
      LEFT TABLE EXPRESSION
        TABLE id: 3, alias: __table1, table_name: tributary.events_counted
      RIGHT TABLE EXPRESSION
        TABLE_FUNCTION id: 5, alias: __table2, table_function_name: numbers
  WHERE
    FUNCTION id: 12, function_name: in, function_type: ordinary, result_type: UInt8
          QUERY id: 14, is_subquery: 1
            JOIN TREE
              TABLE id: 17, alias: __table1, table_name: system.one""".splitlines()


def test_every_function_node_is_found_and_aliases_are_not_functions() -> None:
    assert names_in_ast(AST)[0] == {"upper", "file"}


# EXPLAIN AST of a scalar subquery on system.tables, an IN over INFORMATION_SCHEMA, and
# merge(): the query tree shows none of them (the analyzer runs the scalar first).
SCALAR_AST = """SelectWithUnionQuery (children 2)
          ExpressionList (children 2)
           Subquery (alias t) (children 1)
              SelectQuery (children 2)
               ExpressionList (children 1)
                Function groupArray (children 1)
                 ExpressionList (children 1)
                  Identifier name
                 TableExpression (children 1)
                  TableIdentifier system.tables
           Identifier x.a
             TableIdentifier tributary.events_counted (alias x)
              Identifier user_id
                     TableIdentifier INFORMATION_SCHEMA.TABLES
                      Function merge (children 1)
 Identifier Native""".splitlines()
DATABASES = frozenset(
    {"system", "INFORMATION_SCHEMA", "information_schema", "default", "tributary"}
)
TABLE_FUNCTIONS = frozenset({"file", "merge", "numbers", "url", "view"})


def test_names_outside_the_database_are_refused_before_anything_runs() -> None:
    functions, names = names_in_ast(SCALAR_AST)
    assert names == {
        "name",
        "system.tables",
        "x.a",
        "tributary.events_counted",
        "user_id",
        "INFORMATION_SCHEMA.TABLES",
        "Native",
    }
    no_merge = functions - {"merge"}
    refusal = check_ast(no_merge, names, "tributary", DATABASES, TABLE_FUNCTIONS)
    assert refusal is not None and refusal.reason == "outside_database"
    assert "INFORMATION_SCHEMA.TABLES, system.tables" in refusal.message
    refusal = check_ast(functions, names, "tributary", DATABASES, TABLE_FUNCTIONS)
    assert refusal is not None and refusal.reason == "table_function"
    ours = {"x.a", "tributary.events_counted", "user_id", "Native"}
    assert (
        check_ast({"groupArray", "numbers"}, ours, "tributary", DATABASES, TABLE_FUNCTIONS) is None
    )


def test_host_functions_are_refused_whatever_their_case() -> None:
    for name in ("file", "FILE", "dictGet", "dictGetOrDefault", "getServerSetting", "joinGet"):
        refusal = check_functions({"count", name})
        assert refusal is not None and refusal.reason == "outward_function", name
        assert name in refusal.message
    assert check_functions({"count", "upper", "JSONExtractInt", "quantiles"}) is None


def test_tables_and_table_functions_are_read_from_the_query_tree() -> None:
    assert sources_in_query_tree(TREE) == (
        {"tributary.events_counted", "system.one"},
        {"numbers"},
    )


def test_only_the_database_and_system_one_may_be_read() -> None:
    ours = {"tributary.events_counted", "system.one"}
    assert check_sources(ours, {"numbers"}, "tributary") is None
    for table in ("system.tables", "INFORMATION_SCHEMA.TABLES", "other.events", "tributary_x.t"):
        refusal = check_sources({"tributary.events_counted", table}, set(), "tributary")
        assert refusal is not None and refusal.reason == "outside_database", table


def test_table_functions_that_reach_out_are_refused() -> None:
    for function in ("file", "url", "s3", "remote", "merge", "executable", "input", "mysql"):
        refusal = check_sources(set(), {"numbers", function}, "tributary")
        assert refusal is not None and refusal.reason == "table_function", function


def test_the_query_runs_only_as_a_subquery() -> None:
    assert wrapped("SELECT 1") == "SELECT * FROM (SELECT 1)"


def test_limit_errors_name_the_limit_and_our_setting() -> None:
    timeout = "Code: 159. DB::Exception: Timeout exceeded: elapsed 2000 ms. (TIMEOUT_EXCEEDED)"
    assert limit_hit(timeout) == ("max_execution_time", "TRIBUTARY_QUERY_MAX_EXECUTION_S")
    memory = "Code: 241. DB::Exception: Memory limit (for query) exceeded (MEMORY_LIMIT_EXCEEDED)"
    assert limit_hit(memory) == ("max_memory_usage", "TRIBUTARY_QUERY_MAX_MEMORY_MB")
    assert limit_hit("Code: 62. DB::Exception: Syntax error (SYNTAX_ERROR)") is None
