"""Schema evolution rules (pure): which changes to a type's JSON Schema break its readers.

A subscriber written against version N of a type must read every record of version N,
those written before a change and after it, and a replay must read old records with the
new model. So, within one version, these are breaking: a field removed, a field's type
changed or narrowed, a new required field (or an optional one made required), an enum
narrowed, and a new field on a closed object (`additionalProperties: false`). Adding an
optional field to an open object, or widening a type, is not.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every change from `old` to `new` that breaks a reader of `old`, as readable lines."""
    problems: list[str] = []
    _compare(old, new, "data", old, new, problems)
    return problems


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {
            **root.get("$defs", {}).get(name, {}),
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
        seen += 1
    return schema


def _branches(schema: Schema) -> list[Schema]:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return list(schema[key])
    return [schema]


def _types(schema: Schema, root: Schema) -> set[str] | None:
    """The JSON types `schema` admits; None: any."""
    found: set[str] = set()
    for branch in _branches(schema):
        branch = _resolve(branch, root)
        if any(k in branch for k in ("anyOf", "oneOf")):
            inner = _types(branch, root)
            if inner is None:
                return None
            found |= inner
            continue
        kind = branch.get("type")
        if kind is None:
            if "enum" in branch or "const" in branch:
                values = branch.get("enum", [branch.get("const")])
                found |= {_json_type(v) for v in values}
                continue
            if "properties" in branch:
                found.add("object")
                continue
            return None
        found |= set(kind) if isinstance(kind, list) else {kind}
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _widens(old: set[str], new: set[str]) -> bool:
    """Every value of a type in `old` is still allowed by `new` (an integer is a number)."""
    return all(t in new or (t == "integer" and "number" in new) for t in old)


def _enum(schema: Schema, root: Schema) -> set[Any] | None:
    values: set[Any] = set()
    for branch in _branches(schema):
        branch = _resolve(branch, root)
        if "enum" in branch:
            values |= {_hashable(v) for v in branch["enum"]}
        elif "const" in branch:
            values.add(_hashable(branch["const"]))
        elif branch.get("type") == "null":
            values.add(None)
        else:
            return None  # this branch admits more than a list of values
    return values


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict)) else value


def _objects(schema: Schema, root: Schema) -> list[Schema]:
    return [b for b in (_resolve(x, root) for x in _branches(schema)) if "properties" in b]


def _compare(
    old: Schema, new: Schema, path: str, old_root: Schema, new_root: Schema, out: list[str]
) -> None:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    old_types, new_types = _types(old, old_root), _types(new, new_root)
    if old_types is None and new_types is not None:
        out.append(f"{path}: was any value, now only {sorted(new_types)}")
        return
    if old_types is not None and new_types is not None and not _widens(old_types, new_types):
        out.append(f"{path}: type {sorted(old_types)} became {sorted(new_types)}")
        return
    old_enum, new_enum = _enum(old, old_root), _enum(new, new_root)
    if new_enum is not None and (old_enum is None or old_enum - new_enum):
        lost = sorted(map(str, (old_enum or set()) - new_enum)) if old_enum else "any value"
        out.append(f"{path}: allowed values narrowed (no longer {lost})")
    old_objects, new_objects = _objects(old, old_root), _objects(new, new_root)
    for index, old_object in enumerate(old_objects):
        # Unions of objects (a job's spec): compare each with the one of the same title.
        title = old_object.get("title")
        match = next((o for o in new_objects if o.get("title") == title), None)
        if match is None and len(old_objects) == 1 and len(new_objects) == 1:
            match = new_objects[0]
        if match is None:
            out.append(f"{path}: the {title or f'object #{index}'} alternative was removed")
            continue
        _compare_object(old_object, match, path, old_root, new_root, out)
    if "items" in old and "items" in new:
        _compare(old["items"], new["items"], f"{path}[]", old_root, new_root, out)


def _compare_object(
    old: Schema, new: Schema, path: str, old_root: Schema, new_root: Schema, out: list[str]
) -> None:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            out.append(f"{path}.{name}: removed")
        else:
            _compare(old_prop, new_props[name], f"{path}.{name}", old_root, new_root, out)
    for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        out.append(
            f"{path}.{name}: " + ("made required" if name in old_props else "new required field")
        )
    if old.get("additionalProperties") is False:
        for name in sorted(set(new_props) - set(old_props)):
            out.append(f"{path}.{name}: added to an object that allows no other fields")
