"""RIV timestamps (YYYYMMDDhhmmss, Swedish local time, no zone) ⇄ FHIR dateTime.

A RIV timestamp becomes a FHIR dateTime with the Europe/Stockholm offset in force at that wall
time (+01:00 in winter, +02:00 in summer). Coming back, a dateTime whose offset is one Stockholm
has for its wall time is written with exactly those wall-clock digits, so every timestamp returns
byte-identical, including the two DST edge cases:

- the repeated hour in October (02:00-02:59 happens twice): written with the first offset (+02:00);
- the skipped hour in March (02:00-02:59 does not exist): written with the winter offset (+01:00),
  as `zoneinfo` does; a FHIR reader sees the instant one hour later, which is what such a clock
  reading means.

Any other dateTime (e.g. UTC `Z`) is converted to Stockholm wall time; fractions of a second are
dropped (RIV has whole seconds). A FHIR date without time gets the time of day the caller asks for.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

from mappings.riv import RivFormatError, RivWriteError

#: TimeStampType's pattern in clinicalprocess_logistics_logistics_3.0.xsd.
TIMESTAMP = re.compile(r"(19|20)\d\d(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])(0[0-9]|1[0-9]|2[0123])([0-5])([0-9])([0-5])([0-9])")
_FHIR_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\Z")
_FHIR_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?\Z")


@cache
def stockholm() -> dt.tzinfo:
    """Europe/Stockholm (needs the system zone database or the `tzdata` package)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Stockholm")


def to_fhir(timestamp: str, where: str) -> str:
    """A RIV timestamp as a FHIR dateTime with the Stockholm offset of that wall time.

    What `wall.replace(tzinfo=stockholm()).isoformat()` gives, spelt out from the fourteen
    digits (checked above) and the zone's offset for that wall time."""
    if not TIMESTAMP.fullmatch(timestamp):
        raise RivFormatError(f"{where}: {timestamp!r} is not a RIV timestamp (YYYYMMDDhhmmss)")
    try:  # (ISO 8601 basic format: what strptime("%Y%m%d%H%M%S") reads, faster)
        wall = dt.datetime.fromisoformat(f"{timestamp[:8]}T{timestamp[8:]}")
    except ValueError:
        raise RivFormatError(f"{where}: {timestamp!r} is not a real date and time") from None
    t = timestamp
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}T{t[8:10]}:{t[10:12]}:{t[12:14]}{_offset_text(stockholm().utcoffset(wall))}"


_OFFSETS: dict[dt.timedelta, str] = {}


def _offset_text(offset: dt.timedelta) -> str:
    """A UTC offset as `isoformat` writes it ("+01:00"), worked out once per offset."""
    text = _OFFSETS.get(offset)
    if text is None:
        text = _OFFSETS[offset] = dt.datetime(2000, 1, 1, tzinfo=dt.timezone(offset)).isoformat()[19:]
    return text


def from_fhir(value: str, where: str, *, date_time: str = "000000") -> str:
    """A FHIR date or dateTime as a RIV timestamp in Stockholm wall time.

    A date without time of day gets `date_time` (hhmmss), e.g. "235959" for the end of a period.
    """
    date_only = _FHIR_DATE.match(value)
    if date_only:
        try:
            dt.date(*(int(g) for g in date_only.groups()))
        except ValueError:
            raise RivWriteError(f"{where}: {value!r} is not a real date") from None
        return _checked(value.replace("-", "") + date_time, where)
    if not _FHIR_DATETIME.match(value):
        raise RivWriteError(f"{where}: {value!r} is not a FHIR date or dateTime precise to the day")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RivWriteError(f"{where}: {value!r} is not a real date and time") from None
    wall = moment.replace(tzinfo=None, microsecond=0)
    if moment.tzinfo is not None and not _is_stockholm_offset(wall, moment.utcoffset()):
        wall = moment.astimezone(stockholm()).replace(tzinfo=None, microsecond=0)
    return _checked(wall.strftime("%Y%m%d%H%M%S"), where)


def _is_stockholm_offset(wall: dt.datetime, offset: dt.timedelta | None) -> bool:
    return any(wall.replace(tzinfo=stockholm(), fold=fold).utcoffset() == offset for fold in (0, 1))


def _checked(timestamp: str, where: str) -> str:
    if not TIMESTAMP.fullmatch(timestamp):
        raise RivWriteError(f"{where}: {timestamp} is outside what a RIV timestamp can hold (years 1900-2099)")
    return timestamp
