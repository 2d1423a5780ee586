"""Velero's restore resource modifiers, simulated for the lab's Velero (``spec.resourceModifier`` of a Restore).

The ConfigMap (in Velero's namespace) holds one key with a ``version: v1`` document of ``resourceModifierRules``; a rule
whose ``conditions`` (``groupResource``, ``resourceNameRegex``, ``namespaces``, ``labelSelector.matchLabels``) match an
object applies its JSON patches (RFC 6902 ``add``, ``remove``, ``replace``, ``test``; values are strings in Velero's form:
numbers, booleans, null, objects and arrays are JSON, anything else a string). A failed ``test`` skips the rest of that
rule (as Velero does); any other failure is an error of the item. Written here for the lab; not Velero's code.
"""

from __future__ import annotations

import copy
import json
import re

import yaml


class ModifierError(ValueError):
    pass


class _TestFailed(Exception):
    pass


def load(configmap: dict | None) -> list[dict]:
    """The rules of a resource-modifier ConfigMap; ModifierError when it is missing or malformed."""
    if configmap is None:
        raise ModifierError("the resource modifier ConfigMap does not exist")
    data = configmap.get("data") or {}
    if len(data) != 1:
        raise ModifierError(f"the resource modifier ConfigMap must hold exactly one key, it holds {len(data)}")
    doc = yaml.safe_load(next(iter(data.values()))) or {}
    if doc.get("version") != "v1":
        raise ModifierError(f"unsupported resource modifier version {doc.get('version')!r}")
    rules = doc.get("resourceModifierRules") or []
    for rule in rules:
        if not (rule.get("conditions") or {}).get("groupResource"):
            raise ModifierError("every resource modifier rule needs conditions.groupResource")
    return rules


def _value(raw):
    if raw is None:
        return None
    text = str(raw)
    if text in ("true", "false", "null") or text[:1] in "{[" or re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text):
        return json.loads(text)
    return text


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ModifierError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts: list[str]):
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _apply_one(doc, patch: dict):
    op = patch.get("operation")
    parts = _pointer(patch.get("path", ""))
    value = _value(patch.get("value"))
    try:
        parent, key = _parent(doc, parts)
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key)
            if op == "test":
                if parent[index] != value:
                    raise _TestFailed
            elif op == "add":
                parent.insert(index, value)
            elif op == "remove":
                del parent[index]
            elif op == "replace":
                parent[index] = value
            else:
                raise ModifierError(f"unsupported operation {op!r}")
            return
        if op == "test":
            if key not in parent or parent[key] != value:
                raise _TestFailed
        elif op == "add":
            parent[key] = value
        elif op in ("remove", "replace"):
            if key not in parent:
                raise ModifierError(f"{op} {patch.get('path')}: no such member")
            if op == "remove":
                del parent[key]
            else:
                parent[key] = value
        else:
            raise ModifierError(f"unsupported operation {op!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        if isinstance(exc, ModifierError):
            raise
        raise ModifierError(f"{op} {patch.get('path')}: {exc}") from None


def _matches(conditions: dict, obj: dict, group_resource: str) -> bool:
    meta = obj.get("metadata") or {}
    if conditions.get("groupResource") != group_resource:
        return False
    if conditions.get("namespaces") and meta.get("namespace") not in conditions["namespaces"]:
        return False
    regex = conditions.get("resourceNameRegex")
    if regex and not re.search(regex, meta.get("name") or ""):
        return False
    wanted = ((conditions.get("labelSelector") or {}).get("matchLabels")) or {}
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def apply(rules: list[dict], obj: dict, group_resource: str) -> tuple[dict, int]:
    """``obj`` with every matching rule applied, and the number of rules applied; ModifierError on a failed patch."""
    out = obj
    applied = 0
    for rule in rules:
        if not _matches(rule.get("conditions") or {}, out, group_resource):
            continue
        candidate = copy.deepcopy(out)
        try:
            for patch in rule.get("patches") or []:
                _apply_one(candidate, patch)
        except _TestFailed:
            continue
        out = candidate
        applied += 1
    return out, applied
