"""Check Terraform JSON against a provider schema (``terraform providers schema -json``).

Every resource and data source type must exist; every argument and block must be known
to it, not computed-only, not deprecated, of the right shape; required arguments and
blocks must be present. ``${...}`` expressions are accepted wherever a value goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "terraform-schemas"
META = frozenset({"depends_on", "count", "for_each", "provider", "lifecycle", "//"})


def load(provider: str = "aws") -> dict[str, Any]:
    data = json.loads((SCHEMAS / f"{provider}.json").read_text())
    schema: dict[str, Any] = data["provider_schemas"][f"registry.terraform.io/hashicorp/{provider}"]
    return schema


def _expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def _type_errors(value: Any, cty: Any, where: str) -> list[str]:
    if _expression(value):
        return []
    if cty == "string":
        ok = isinstance(value, str)
    elif cty == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif cty == "bool":
        ok = isinstance(value, bool)
    elif cty == "dynamic":
        ok = True
    elif isinstance(cty, list) and cty[0] in ("list", "set"):
        if not isinstance(value, list):
            return [f"{where}: expected a {cty[0]}, got {value!r}"]
        return [e for i, item in enumerate(value) for e in _type_errors(item, cty[1], f"{where}[{i}]")]
    elif isinstance(cty, list) and cty[0] == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {value!r}"]
        return [e for k, item in value.items() for e in _type_errors(item, cty[1], f"{where}.{k}")]
    else:
        ok = isinstance(value, dict)
    return [] if ok else [f"{where}: expected {cty}, got {value!r}"]


def check_block(body: Any, block: dict[str, Any], where: str) -> list[str]:
    if not isinstance(body, dict):
        return [f"{where}: expected an object, got {body!r}"]
    errors: list[str] = []
    attributes = block.get("attributes", {})
    blocks = block.get("block_types", {})
    for key, value in body.items():
        if key in META:
            continue
        if key in attributes:
            spec = attributes[key]
            if spec.get("computed") and not (spec.get("optional") or spec.get("required")):
                errors.append(f"{where}.{key}: computed only, cannot be set")
            if spec.get("deprecated"):
                errors.append(f"{where}.{key}: deprecated")
            errors += _type_errors(value, spec["type"], f"{where}.{key}")
        elif key in blocks:
            errors += _check_nested(value, blocks[key], f"{where}.{key}")
        else:
            errors.append(f"{where}: unknown argument or block {key!r}")
    for key, spec in attributes.items():
        if spec.get("required") and key not in body:
            errors.append(f"{where}: required argument {key!r} missing")
    for key, spec in blocks.items():
        if spec.get("min_items", 0) > 0 and key not in body:
            errors.append(f"{where}: required block {key!r} missing")
    return errors


def _check_nested(value: Any, spec: dict[str, Any], where: str) -> list[str]:
    mode = spec["nesting_mode"]
    if mode in ("single", "group"):
        if isinstance(value, list):
            if len(value) != 1:
                return [f"{where}: a single block, got {len(value)}"]
            value = value[0]
        return check_block(value, spec["block"], where)
    items = value if isinstance(value, list) else [value]
    errors: list[str] = []
    if len(items) < spec.get("min_items", 0) or len(items) > spec.get("max_items", len(items)):
        errors.append(f"{where}: {len(items)} blocks, allowed {spec.get('min_items', 0)}-{spec.get('max_items')}")
    for i, item in enumerate(items):
        errors += check_block(item, spec["block"], f"{where}[{i}]")
    return errors


def validate(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every problem of ``document`` (one ``*.tf.json``) against ``schema``."""
    errors: list[str] = []
    for section, schemas in (("resource", "resource_schemas"), ("data", "data_source_schemas")):
        for kind, labelled in document.get(section, {}).items():
            known = schema[schemas].get(kind)
            if known is None:
                errors.append(f"{section}.{kind}: unknown type")
                continue
            if known["block"].get("deprecated"):
                errors.append(f"{section}.{kind}: deprecated type")
            for label, body in labelled.items():
                errors += check_block(body, known["block"], f"{section}.{kind}.{label}")
    return errors
