"""``BACKUP_SCHEDULE``: how often the scheduled backup runs — an interval or a five-field cron line.

``6h``, ``90m``, ``1d``, ``3600`` (seconds) are intervals since the last scheduled backup started;
``15 3 * * *`` (minute hour day-of-month month day-of-week, UTC) is a cron line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CRON_FIELD = re.compile(r"^[0-9*/,\-]+$")
MIN_INTERVAL = 300


@dataclass(frozen=True)
class BackupSchedule:
    """Either ``interval`` seconds or the five ``cron`` fields."""

    interval: int | None = None
    cron: tuple[str, str, str, str, str] | None = None

    @property
    def recovery_point_seconds(self) -> int | None:
        """The longest time between two backups (an interval's length; None for a cron line)."""
        return self.interval


def parse_backup_schedule(text: str) -> BackupSchedule:
    """The schedule ``text`` describes; ``ValueError`` saying why when it describes none."""
    match = _INTERVAL.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds < MIN_INTERVAL:
            raise ValueError(f"an interval of at least {MIN_INTERVAL} seconds, not {text!r}")
        return BackupSchedule(interval=seconds)
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
        raise ValueError(f"an interval (6h, 90m, 1d) or a cron line ('15 3 * * *'), not {text!r}")
    minute, hour, day_of_month, month, day_of_week = fields
    return BackupSchedule(cron=(minute, hour, day_of_month, month, day_of_week))
