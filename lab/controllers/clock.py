"""The controllers' clock: real time, or a manual clock that tests advance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def parse_time(value: str | None) -> datetime | None:
    """RFC3339 (``2026-01-01T00:00:00Z``, fractions and offsets allowed) -> aware UTC datetime."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """Kubernetes' RFC3339 form with second precision: ``2026-01-01T00:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Real time by default; ``set_manual`` freezes it until ``advance`` moves it."""

    def __init__(self, mode: str = "real", now: datetime | None = None):
        self._lock = threading.Lock()
        self._mode = "real"
        self._now: datetime | None = None
        self._offset = timedelta(0)
        if mode == "manual":
            self.set_manual(now)

    @classmethod
    def manual(cls, now: str | datetime | None = None) -> Clock:
        if isinstance(now, str):
            now = parse_time(now)
        return cls("manual", now)

    @property
    def mode(self) -> str:
        return self._mode

    def now(self) -> datetime:
        with self._lock:
            if self._mode == "manual" and self._now is not None:
                return self._now
            return datetime.now(UTC) + self._offset

    def set_manual(self, now: datetime | None = None) -> None:
        with self._lock:
            current = datetime.now(UTC) + self._offset if self._mode == "real" else self._now
            self._mode = "manual"
            self._now = (now or current or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)

    def set_real(self) -> None:
        """Back to real time; a manual clock that ran ahead keeps its lead (time never goes backwards)."""
        with self._lock:
            if self._mode == "manual" and self._now is not None:
                self._offset = max(timedelta(0), self._now - datetime.now(UTC))
            self._mode = "real"
            self._now = None

    def set(self, now: datetime) -> None:
        """Move a manual clock to ``now`` (never backwards)."""
        with self._lock:
            if self._mode != "manual":
                raise ValueError("the clock is in real mode; switch it to manual first")
            if self._now is None or now > self._now:
                self._now = now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            if self._mode != "manual":
                raise ValueError("the clock is in real mode; switch it to manual first")
            self._now = self._now + timedelta(seconds=seconds)
            return self._now

    def sleep_hint(self, until: datetime | None, cap: float) -> float:
        """How long the real-time loop may sleep before ``until`` is due."""
        if self._mode == "manual" or until is None:
            return cap
        return max(0.0, min(cap, (until - self.now()).total_seconds()))

    def monotonic(self) -> float:
        return time.monotonic()
