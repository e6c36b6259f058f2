"""The events RDS has emitted: one record per event, kept 14 days, queried by ``describe_events``.

An :class:`RdsEvent` carries everything every channel needs (describe_events, the SNS message,
the EventBridge envelope), so the channels only format it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

RETENTION = timedelta(days=14)
_SEQ = itertools.count(1)


def utcnow() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC (botocore and moto hand out both kinds)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class RdsEvent:
    """One RDS event, as RDS records it."""

    event_id: str  # RDS-EVENT-0006
    source_type: str  # db-instance
    source_id: str  # bare identifier
    source_arn: str
    message: str
    categories: list[str]
    account: str
    region: str
    date: datetime = field(default_factory=utcnow)
    seq: int = field(default_factory=lambda: next(_SEQ))
    injected: bool = False

    # --- the shapes the API and the channels need ---------------------------------------
    def describe_shape(self) -> dict[str, Any]:
        """An ``Events`` member of DescribeEvents."""
        return {
            "SourceIdentifier": self.source_id,
            "SourceType": self.source_type,
            "Message": self.message,
            "EventCategories": list(self.categories),
            "Date": self.date,
            "SourceArn": self.source_arn,
        }

    @property
    def event_time(self) -> str:
        """``YYYY-MM-DD HH:MM:SS.mmm`` (UTC), as in RDS's SNS message."""
        return self.date.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.date.microsecond // 1000:03d}"

    @property
    def iso_ms(self) -> str:
        """``2018-09-27T22:36:43.292Z`` (EventBridge ``detail.Date``)."""
        return self.date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.date.microsecond // 1000:03d}Z"

    @property
    def iso_s(self) -> str:
        """``2018-09-27T22:36:43Z`` (EventBridge ``time``)."""
        return self.date.strftime("%Y-%m-%dT%H:%M:%SZ")


class EventStore:
    """Thread-safe list of emitted events with RDS's 14-day history."""

    def __init__(self) -> None:
        self._events: list[RdsEvent] = []
        self._lock = threading.Lock()

    def add(self, event: RdsEvent) -> None:
        with self._lock:
            self._events.append(event)
            self._events.sort(key=lambda e: (e.date, e.seq))
            cutoff = utcnow() - RETENTION
            while self._events and self._events[0].date < cutoff:
                self._events.pop(0)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def all(self) -> list[RdsEvent]:
        with self._lock:
            return list(self._events)

    def query(
        self,
        *,
        account: str,
        region: str,
        start: datetime,
        end: datetime,
        source_type: str | None = None,
        source_id: str | None = None,
        categories: Iterable[str] | None = None,
    ) -> list[RdsEvent]:
        """Events in ``[start, end]``, oldest first, filtered as DescribeEvents filters."""
        wanted = {c.lower() for c in categories} if categories else None
        start = max(as_utc(start), utcnow() - RETENTION)
        end = as_utc(end)
        result = []
        for ev in self.all():
            if ev.account != account or ev.region != region:
                continue
            if not start <= ev.date <= end:
                continue
            if source_type is not None and ev.source_type != source_type:
                continue
            if source_id is not None and ev.source_id != source_id:
                continue
            if wanted is not None and not wanted.intersection(ev.categories):
                continue
            result.append(ev)
        return result
