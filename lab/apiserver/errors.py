"""API errors rendered as ``kind: Status`` bodies, like the real API server."""

from __future__ import annotations

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
}


class ApiError(Exception):
    """An error the server answers with a Status object."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _qualified(res) -> str:
    """``deployments.apps`` / ``pods`` as the real server names resources in messages."""
    return f"{res.plural}.{res.group}" if res.group else res.plural


def not_found(res, name: str) -> ApiError:
    return ApiError(404, f'{_qualified(res)} "{name}" not found',
                    details={"name": name, "group": res.group, "kind": res.plural})


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, f'namespaces "{name}" not found', details={"name": name, "kind": "namespaces"})


def already_exists(res, name: str) -> ApiError:
    return ApiError(409, f'{_qualified(res)} "{name}" already exists', reason="AlreadyExists",
                    details={"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name: str, why: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {_qualified(res)} "{name}": {why}',
                    details={"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name: str, causes: list[dict]) -> ApiError:
    """``causes`` items: {"reason": "FieldValueInvalid", "message": ..., "field": ...}."""
    text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    kind = res.kind if res is not None else ""
    group = res.group if res is not None else ""
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, f'{qualified} "{name}" is invalid: {text}',
                    details={"name": name, "group": group, "kind": kind, "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
