"""The published JSON Schemas: exported into the repository, checked against the models.

`schemas/published/<type>/<version>.json` holds the schema of every version of every type
the registry lists. `tributary schemas export` writes them; `check` says what a change to
a model would break (`schemas.evolution`) and which files are stale, and the test suite
fails on either.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from schemas import contracts
from schemas.contracts import Contract
from schemas.evolution import breaking_changes

PUBLISHED = Path(__file__).parent / "published"


def schema_of(contract: Contract, version: int) -> dict[str, Any]:
    schema = contract.models()[version].model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{contracts.SCHEMA_URN}:{contract.type}:{version}",
        "description": contract.description,
        **{k: v for k, v in schema.items() if k != "description"},
    }


def path_of(directory: Path, event_type: str, version: int) -> Path:
    return directory / event_type / f"{version}.json"


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export(
    directory: Path = PUBLISHED, registry: Iterable[Contract] = contracts.CONTRACTS
) -> list[Path]:
    """Write every version's schema; return the files written or rewritten."""
    written = []
    for contract in registry:
        for version in contract.models():
            path = path_of(directory, contract.type, version)
            text = render(schema_of(contract, version))
            if not path.exists() or path.read_bytes() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text)
                written.append(path)
    return written


def check(
    directory: Path = PUBLISHED, registry: Iterable[Contract] = contracts.CONTRACTS
) -> tuple[list[str], list[str]]:
    """(breaking, stale): changes that break a published version's readers (bump the type's
    version instead), and versions whose file differs compatibly or is missing (export)."""
    breaking: list[str] = []
    stale: list[str] = []
    listed = set()
    for contract in registry:
        for version in contract.models():
            listed.add((contract.type, version))
            path = path_of(directory, contract.type, version)
            current = schema_of(contract, version)
            if not path.exists():
                stale.append(f"{contract.type} v{version}: not exported")
                continue
            published = orjson.loads(path.read_bytes())
            for change in breaking_changes(published, current):
                breaking.append(f"{contract.type} v{version}: {change}")
            if render(current) != path.read_bytes():
                stale.append(f"{contract.type} v{version}: {path} differs from the model")
    for path in sorted(directory.glob("*/*.json")):
        named = (path.parent.name, int(path.stem)) if path.stem.isdigit() else None
        if named not in listed:
            breaking.append(f"{path}: published, but no type lists this version any more")
    return breaking, stale
