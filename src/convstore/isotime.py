"""``datetime.isoformat()`` of UTC datetimes, from lookup tables: every history row read
carries one, and the C method (through ``utcoffset``) costs three times as much.

:func:`utc_isoformat` equals ``moment.isoformat()`` for every datetime (the tables serve
the ``timezone.utc`` ones msgpack hands back, anything else goes to ``isoformat``). The
readers' per-row loop (``plans/reading.py``) inlines the same steps with these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "DAY_PREFIXES",
    "EPOCH",
    "HOURS_MINUTES",
    "SECONDS",
    "SECONDS_UTC",
    "THOUSANDTHS",
    "day_prefix",
    "utc_isoformat",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``"HH:MM:"`` for each minute of a day, ``"SS"`` and ``"SS+00:00"`` for each second of a
#: minute, ``"ddd"`` for 0..999 (a microsecond value is two of them).
HOURS_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
SECONDS = tuple(f"{s:02d}" for s in range(60))
SECONDS_UTC = tuple(f"{s:02d}+00:00" for s in range(60))
THOUSANDTHS = tuple(f"{n:03d}" for n in range(1000))
#: ``"YYYY-MM-DDT"`` by days since the epoch (``(moment - EPOCH).days``), filled on demand.
DAY_PREFIXES: dict[int, str] = {}
_MAX_DAYS = 4096


def day_prefix(moment: datetime) -> str:
    """``"YYYY-MM-DDT"`` of a UTC ``moment``, remembered in :data:`DAY_PREFIXES` (bounded)."""
    if len(DAY_PREFIXES) >= _MAX_DAYS:
        DAY_PREFIXES.clear()
    prefix = DAY_PREFIXES[(moment - EPOCH).days] = moment.isoformat()[:11]
    return prefix


def utc_isoformat(moment: datetime) -> str:
    """Exactly ``moment.isoformat()``; cheaper for the aware UTC datetimes msgpack returns."""
    if moment.tzinfo is not UTC or type(moment) is not datetime:
        return moment.isoformat()
    since = moment - EPOCH
    day = DAY_PREFIXES.get(since.days) or day_prefix(moment)
    second, micro = since.seconds, since.microseconds
    if micro:
        return (
            f"{day}{HOURS_MINUTES[second // 60]}{SECONDS[second % 60]}"
            f".{THOUSANDTHS[micro // 1000]}{THOUSANDTHS[micro % 1000]}+00:00"
        )
    return f"{day}{HOURS_MINUTES[second // 60]}{SECONDS_UTC[second % 60]}"
