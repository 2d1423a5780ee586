"""A small parser for 5-field cron schedules (as CronJobs and Velero Schedules use them).

Supports ``*``, ``*/n``, ``a-b``, ``a-b/n``, ``a/n``, lists, month and weekday names,
``7`` as Sunday, the macros ``@yearly @annually @monthly @weekly @daily @midnight @hourly``
and Velero's ``@every <duration>`` (e.g. ``@every 1h30m``). Day-of-month and
day-of-week follow cron's rule: when both are restricted, either may match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


class CronError(ValueError):
    """The schedule cannot be parsed; the message says which field and why."""


def parse_duration(text: str) -> timedelta:
    """Go-style durations as Velero writes them: ``720h0m0s``, ``1h30m``, ``90s``."""
    text = (text or "").strip()
    if not text:
        raise CronError("empty duration")
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        pos = match.end()
    if pos != len(text):
        raise CronError(f"invalid duration {text!r}")
    return timedelta(seconds=total)


def _field(text: str, low: int, high: int, names: dict | None, what: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        part = item
        if not part:
            raise CronError(f"empty list item in {what} field {text!r}")
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"invalid step in {what} field {text!r}")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, _, b = part.partition("-")
            start, end = _value(a, names, what, text), _value(b, names, what, text)
        else:
            start = _value(part, names, what, text)
            end = high if step != 1 else start
        if what == "day-of-week" and end == 7:
            values.add(0)
            end = 6 if start <= 6 else 7
        if start < low or end > high or start > end:
            raise CronError(f"{what} field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(v % 7 if what == "day-of-week" else v for v in values)


def _value(token: str, names: dict | None, what: str, text: str) -> int:
    if names and token in names:
        return names[token]
    if not token.isdigit():
        raise CronError(f"invalid value {token!r} in {what} field {text!r}")
    return int(token)


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool
    every: timedelta | None = None

    def matches_day(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = ((t.weekday() + 1) % 7) in self.weekdays
        if self.dom_star and self.dow_star:
            return True
        if self.dom_star:
            return dow
        if self.dow_star:
            return dom
        return dom or dow

    def next_after(self, t: datetime) -> datetime:
        """The first scheduled time strictly after ``t`` (timezone of ``t`` kept)."""
        if self.every is not None:
            return t + self.every
        n = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(500000):
            if n.month not in self.months:
                year, month = (n.year + 1, 1) if n.month == 12 else (n.year, n.month + 1)
                n = n.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self.matches_day(n):
                n = (n + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if n.hour not in self.hours:
                n = (n + timedelta(hours=1)).replace(minute=0)
                continue
            if n.minute not in self.minutes:
                n = n + timedelta(minutes=1)
                continue
            return n
        raise CronError("schedule never fires")

    def last_due(self, after: datetime, now: datetime, limit: int = 100000) -> tuple[datetime | None, int]:
        """The latest scheduled time in (after, now] and how many were due; (None, 0) if none."""
        last = None
        count = 0
        t = self.next_after(after)
        while t <= now and count < limit:
            last = t
            count += 1
            t = self.next_after(t)
        return last, count


def parse_cron(schedule: str) -> CronSchedule:
    text = (schedule or "").strip()
    if not text:
        raise CronError("empty schedule")
    if text.startswith("@every"):
        every = parse_duration(text[len("@every"):].strip())
        if every.total_seconds() <= 0:
            raise CronError(f"invalid schedule {schedule!r}: @every needs a positive duration")
        full = frozenset()
        return CronSchedule(full, full, full, full, full, True, True, every)
    text = MACROS.get(text.lower(), text)
    fields = text.split()
    if fields and (fields[0].startswith("CRON_TZ=") or fields[0].startswith("TZ=")):
        fields = fields[1:]
    if len(fields) != 5:
        raise CronError(f"invalid schedule {schedule!r}: expected 5 fields, got {len(fields)}")
    minute, hour, dom, month, dow = fields
    return CronSchedule(
        minutes=_field(minute, 0, 59, None, "minute"),
        hours=_field(hour, 0, 23, None, "hour"),
        days=_field(dom, 1, 31, None, "day-of-month"),
        months=_field(month, 1, 12, MONTHS, "month"),
        weekdays=_field(dow, 0, 7, DAYS, "day-of-week"),
        dom_star=dom in ("*", "?"),
        dow_star=dow in ("*", "?"),
    )
