"""The layers, checked by walking every module's imports (also those inside functions).

- The base, `schemas/` and `tributary/`, imports nothing above it: not the three stages of
  the flow (`gateway`, `streams`, `projections`), nor `infra`, the dashboard or the entry
  points (`cli`).
- The stages import none of each other: data flows between them only through topics.
- The pure rules import no I/O library (Faust, aiokafka, redis, prometheus_client), also
  not through what they import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("schemas", "tributary", "gateway", "streams", "projections", "infra", "dashboard", "cli")
BASE = ("schemas", "tributary")
STAGES = ("gateway", "streams", "projections")
IO_LIBRARIES = ("faust", "aiokafka", "redis", "prometheus_client")
# Decisions and rules that must run without any service: what their unit tests feed records.
PURE = (
    "streams.jobs.admission",
    "streams.jobs.retries",
    "streams.events.sequencing",
    "streams.jobs.container_rules",
    "streams.jobs.emit",
    "streams.runtime.state",
    "streams.runtime.outputs",
    "streams.runtime.processor",
    "streams.events.counter",
    "streams.jobs.commands",
    "streams.jobs.executor",
    "gateway.resume",
    "projections.batching",
    "projections.tables",
    "projections.query_rules",
    "dashboard.views",
    "tributary.limits",
)


def imported(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def source(module: str) -> Path | None:
    """The file of one of our modules, or None (a package's attribute, a third party)."""
    for candidate in (
        ROOT / f"{module.replace('.', '/')}.py",
        ROOT / module.replace(".", "/") / "__init__.py",
    ):
        if candidate.exists():
            return candidate
    return None


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def closure(module: str) -> set[str]:
    """What `module` imports, and what those of ours import in turn."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        path = source(todo.pop())
        if path is None:
            continue
        for name in imported(path) - seen:
            seen.add(name)
            if name.split(".")[0] in OURS:
                todo.append(name)
    return seen


def imports_of(package: str, forbidden: set[str]) -> list[str]:
    """Each import of `package`'s modules that names one of the `forbidden` packages."""
    return sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in imported(path)
        if name.split(".")[0] in forbidden
    )


@pytest.mark.parametrize("package", BASE)
def test_the_base_imports_nothing_above_it(package: str) -> None:
    assert not (found := imports_of(package, set(OURS) - set(BASE))), found


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage: str) -> None:
    assert not (found := imports_of(stage, set(STAGES) - {stage})), found


@pytest.mark.parametrize("module", PURE)
def test_pure_rules_import_no_io_library(module: str) -> None:
    assert source(module) is not None, f"{module} is gone: update PURE"
    io = sorted(n for n in closure(module) if n.split(".")[0] in IO_LIBRARIES)
    assert not io, f"{module} reaches {io}"


def test_no_module_imports_relatively() -> None:
    """The walk resolves absolute names only: a relative import would slip past it."""
    relative = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in OURS
        for path in modules(package)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    )
    assert not relative, relative


def test_the_walk_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    """The check can fail: a lazy import counts like one at the top."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from streams import dlq_admin\n    import redis.asyncio\n")
    assert {"streams", "streams.dlq_admin", "redis.asyncio"} <= imported(module)
