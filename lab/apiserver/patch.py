"""Patch engines: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
patch (Kubernetes merge keys and ``$patch`` directives) and the field-ownership model of
server-side apply (see lab/README.md, "Server-side apply")."""

from __future__ import annotations

import copy
import json

from lab.apiserver.errors import ApiError

# ---------------------------------------------------------------- JSON patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}: must start with '/'", reason="Invalid")
    return [_unescape(t) for t in path[1:].split("/")]


def _resolve(doc, tokens: list[str], path: str):
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise ApiError(422, f"jsonpatch: path {path!r} not found: missing key {t!r}", reason="Invalid")
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                idx = int(t)
            except ValueError:
                raise ApiError(422, f"jsonpatch: path {path!r}: {t!r} is not a list index", reason="Invalid") from None
            if not 0 <= idx < len(cur):
                raise ApiError(422, f"jsonpatch: path {path!r}: index {idx} out of range", reason="Invalid")
            cur = cur[idx]
        else:
            raise ApiError(422, f"jsonpatch: path {path!r} goes through a scalar", reason="Invalid")
    return cur


def _add(doc, path: str, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise ApiError(422, f"jsonpatch add: {path!r}: {last!r} is not a list index", reason="Invalid") from None
            if not 0 <= idx <= len(parent):
                raise ApiError(422, f"jsonpatch add: {path!r}: index {idx} out of range", reason="Invalid")
            parent.insert(idx, value)
    else:
        raise ApiError(422, f"jsonpatch add: parent of {path!r} is not an object or array", reason="Invalid")
    return doc


def _remove(doc, path: str):
    tokens = _pointer(path)
    if not tokens:
        raise ApiError(422, "jsonpatch remove: cannot remove the whole document", reason="Invalid")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, f"jsonpatch remove operation does not apply: doc is missing path: {path}", reason="Invalid")
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            idx = int(last)
        except ValueError:
            raise ApiError(422, f"jsonpatch remove: {path!r}: {last!r} is not a list index", reason="Invalid") from None
        if not 0 <= idx < len(parent):
            raise ApiError(422, f"jsonpatch remove operation does not apply: doc is missing path: {path}", reason="Invalid")
        return parent.pop(idx)
    raise ApiError(422, f"jsonpatch remove: parent of {path!r} is not an object or array", reason="Invalid")


def json_patch(doc, ops) -> dict:
    if not isinstance(ops, list):
        raise ApiError(400, "json patch body must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            tokens = _pointer(path)
            if not tokens:
                doc = copy.deepcopy(op.get("value"))
                continue
            _resolve(doc, tokens, path)  # must exist
            _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            value = copy.deepcopy(_resolve(doc, _pointer(op["from"]), op["from"]))
            doc = _add(doc, path, value)
        elif kind == "test":
            actual = _resolve(doc, _pointer(path), path)
            if actual != op.get("value"):
                raise ApiError(422, f"jsonpatch test operation does not apply: is not equal: {path}", reason="Invalid")
        else:
            raise ApiError(400, f"unknown json patch operation {kind!r}")
    return doc


# ---------------------------------------------------------------- JSON merge patch


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- strategic merge patch

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "readinessGates": "conditionType",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "ports": None,  # containerPort for container ports, port for service ports: decided by the items
}
SET_LISTS = {"finalizers"}  # lists of scalars merged as sets


def merge_key_for(field: str, *lists) -> str | None:
    if field not in MERGE_KEYS:
        return None
    key = MERGE_KEYS[field]
    if key is not None:
        return key
    for items in lists:
        for item in items or []:
            if isinstance(item, dict):
                if "containerPort" in item:
                    return "containerPort"
                if "port" in item:
                    return "port"
    return None


def _clean(value):
    """Drop ``$...`` directives from a patch fragment that is inserted as is."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(v) for v in value if not (isinstance(v, dict) and set(v) == {"$patch"})]
    return value


_DELETE = object()


def strategic_merge(orig, patch):
    """Apply a strategic merge patch to ``orig`` (neither is modified)."""
    result = _smp(orig, patch)
    return {} if result is _DELETE else result


def _smp(orig, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _clean(patch)
    if directive == "delete":
        return _DELETE
    if directive is not None:
        raise ApiError(400, f"unknown patch directive {directive!r} (want replace or delete)")
    result = dict(orig) if isinstance(orig, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    orders = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (value or [])]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp(result.get(key), value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _reorder(field, result[field], order)
    return result


def _merge_list(field: str, orig, patch: list):
    if any(isinstance(i, dict) and i.get("$patch") == "replace" and len(i) == 1 for i in patch):
        return _clean(patch)
    if field in SET_LISTS:
        out = list(orig or [])
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    key = merge_key_for(field, orig, patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return _clean(patch)
    out = [copy.deepcopy(i) for i in (orig or []) if isinstance(orig, list)]
    for item in patch:
        if item.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == item.get(key))]
            continue
        for idx, existing in enumerate(out):
            if isinstance(existing, dict) and key in item and existing.get(key) == item.get(key):
                out[idx] = _smp(existing, item)
                break
        else:
            out.append(_clean(item))
    return out


def _reorder(field: str, items: list, order: list) -> list:
    key = merge_key_for(field, items, order)
    if key is None:
        return items
    wanted = [o.get(key) for o in order if isinstance(o, dict)]
    ranked = {v: i for i, v in enumerate(wanted)}
    return sorted(items, key=lambda i: ranked.get(i.get(key) if isinstance(i, dict) else None, len(ranked)))


# ---------------------------------------------------------------- server-side apply field sets
#
# A field path is a tuple of fieldsV1 tokens: ("f:spec", "f:replicas"),
# ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image").
# Leaves are scalars, atomic lists, empty maps and set-list members ("v:...").

TRACKED_METADATA = ("labels", "annotations", "finalizers")


def field_values(obj: dict, include_status: bool = False) -> dict:
    """path -> value for every leaf the ownership model tracks."""
    out: dict = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "status" and not include_status:
            continue
        if key == "metadata":
            for mk in TRACKED_METADATA:
                if mk in (value or {}):
                    _walk(value[mk], ("f:metadata", "f:" + mk), mk, out)
            continue
        _walk(value, ("f:" + key,), key, out)
    return out


def _walk(value, path: tuple, field: str, out: dict) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, (*path, "f:" + k), k, out)
        return
    if isinstance(value, list) and value:
        if field in SET_LISTS and all(not isinstance(v, (dict, list)) for v in value):
            for v in value:
                out[(*path, "v:" + json.dumps(v))] = v
            return
        key = merge_key_for(field, value)
        if key and all(isinstance(v, dict) and key in v for v in value):
            for item in value:
                ipath = (*path, "k:" + json.dumps({key: item[key]}, separators=(",", ":")))
                for k, v in item.items():
                    _walk(v, (*ipath, "f:" + k), k, out)
            return
    out[path] = value


def _find_item(items: list, token: str):
    if token.startswith("k:"):
        want = json.loads(token[2:])
        for idx, item in enumerate(items):
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return idx
    elif token.startswith("v:"):
        want = json.loads(token[2:])
        for idx, item in enumerate(items):
            if item == want:
                return idx
    return None


def delete_path(obj: dict, path: tuple) -> None:
    """Remove the field at ``path``; removing the key field of a keyed list item removes the
    item; maps and lists left empty are removed too."""
    chain = []
    cur = obj
    for token in path:
        if isinstance(cur, dict) and token.startswith("f:") and token[2:] in cur:
            chain.append((cur, token[2:], token))
            cur = cur[token[2:]]
        elif isinstance(cur, list):
            idx = _find_item(cur, token)
            if idx is None:
                return
            chain.append((cur, idx, token))
            cur = cur[idx]
        else:
            return
    container, key, _token = chain.pop()
    if chain and isinstance(chain[-1][0], list) and chain[-1][2].startswith("k:") and key in json.loads(chain[-1][2][2:]):
        container, key, _token = chain.pop()  # the item's key field: drop the whole item
    container.pop(key) if isinstance(container, list) else container.pop(key, None)
    while chain:
        container, key, _token = chain.pop()
        child = container[key]
        if isinstance(child, (dict, list)) and not child:
            container.pop(key) if isinstance(container, list) else container.pop(key, None)
        else:
            break


def fields_v1(paths) -> dict:
    root: dict = {}
    for path in sorted(paths):
        cur = root
        for token in path:
            cur = cur.setdefault(token, {})
    return root


def format_path(path: tuple) -> str:
    out = ""
    for token in path:
        if token.startswith("f:"):
            out += "." + token[2:]
        elif token.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(token[2:]).items()) + "]"
        elif token.startswith("v:"):
            out += "[=" + token[2:] + "]"
    return out
