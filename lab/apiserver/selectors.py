"""Label and field selectors (the query-string syntax of list and watch)."""

from __future__ import annotations

import re

from lab.apiserver.errors import bad_request

_OP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split(expr: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (p.strip() for p in parts) if p]


def parse_label_selector(expr: str | None):
    """Return a predicate over a labels dict; raise 400 on bad syntax."""
    if not expr:
        return None
    reqs = []
    for part in _split(expr):
        m = _OP_RE.match(part)
        if m:
            key, op, value = m.groups()
            reqs.append((key, "!=" if op == "!=" else "=", value))
            continue
        m = re.match(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$", part)
        if m:
            key, op, values = m.groups()
            reqs.append((key, op, {v.strip() for v in values.split(",") if v.strip()}))
            continue
        m = re.match(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$", part)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        raise bad_request(f"unable to parse requirement: {part!r} in label selector {expr!r}")

    def match(labels: dict | None) -> bool:
        labels = labels or {}
        for key, op, value in reqs:
            present = key in labels
            if op == "=" and (not present or labels[key] != value):
                return False
            if op == "!=" and present and labels[key] == value:
                return False
            if op == "in" and (not present or labels[key] not in value):
                return False
            if op == "notin" and present and labels[key] in value:
                return False
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
        return True

    return match


def _field_value(obj: dict, path: str) -> str:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(expr: str | None):
    """Return a predicate over an object; any dotted path is accepted (=, ==, !=)."""
    if not expr:
        return None
    reqs = []
    for part in _split(expr):
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid field selector: {expr!r}: {part!r} is not key=value, key==value or key!=value")
        key, op, value = m.groups()
        reqs.append((key, op != "!=", value))

    def match(obj: dict) -> bool:
        for key, equal, value in reqs:
            if (_field_value(obj, key) == value) != equal:
                return False
        return True

    return match


def field_selector_name(expr: str | None) -> str | None:
    """The name a ``metadata.name=X`` selector pins (for a fast lookup), else None."""
    if not expr:
        return None
    parts = _split(expr)
    if len(parts) != 1:
        return None
    m = re.match(r"^\s*metadata\.name\s*==?\s*(.+?)\s*$", parts[0])
    return m.group(1) if m else None


def selector_string(selector: dict | None) -> str:
    """A LabelSelector (matchLabels/matchExpressions) as the query string form."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
