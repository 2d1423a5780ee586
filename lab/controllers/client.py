"""``ControllersAdmin``: a small client of the controllers' admin API (tests and other lab parts use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime

from lab.controllers.clock import format_time, parse_time


class AdminError(RuntimeError):
    pass


class ControllersAdmin:
    def __init__(self, url: str, timeout: float = 600.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_endpoints(cls, endpoints: dict) -> ControllersAdmin:
        return cls(endpoints["controllers"]["admin_url"])

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", "")
            except ValueError:
                message = ""
            raise AdminError(f"{method} {path} failed: HTTP {exc.code}: {message}") from None

    def status(self) -> dict:
        return self._call("GET", "/status")

    def now(self) -> datetime:
        return parse_time(self.status()["clock"]["now"])

    def manual(self, now: str | datetime | None = None) -> dict:
        body: dict = {"mode": "manual"}
        if now is not None:
            body["now"] = now if isinstance(now, str) else format_time(now)
        return self._call("POST", "/clock", body)

    def real(self) -> dict:
        return self._call("POST", "/clock", {"mode": "real"})

    def advance(self, seconds: float) -> dict:
        return self._call("POST", "/clock/advance", {"seconds": seconds})

    def reconcile(self) -> dict:
        return self._call("POST", "/reconcile", {})
