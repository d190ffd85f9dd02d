"""Structured JSON logs with correlation ids; personnummer are masked before anything is written.

    from adapter.logs import configure, correlation, get_logger
    configure("INFO")
    with correlation("3f2c…", message_id=17):
        get_logger("gateway").info("delivered", extra={"status": 200})

Every record becomes one JSON line: time, level, logger, message, the correlation id and
message id of the surrounding ``correlation()`` block, and any ``extra`` fields. The
``MaskPersonnummer`` filter runs ``mappings.identifiers.mask_text`` over the message and every
string field, so a personnummer that slips into a log call never reaches the log in plain text.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from mappings.identifiers import mask_text

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("carebridge_log_context", default={})

#: LogRecord attributes that are not user fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
#: The root of every carebridge logger.
ROOT = "carebridge"


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` fields for a log call; names a LogRecord already uses get a trailing underscore."""
    return {(f"{k}_" if k in _STANDARD else k): v for k, v in values.items()}


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``carebridge`` root."""
    return logging.getLogger(f"{ROOT}.{name}")


@contextlib.contextmanager
def correlation(correlation_id: str | None, **fields: Any) -> Iterator[None]:
    """Attach a correlation id (and fields such as message_id) to every log record inside the block."""
    token = _context.set({**_context.get(), "correlation_id": correlation_id, **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_correlation_id() -> str | None:
    """The correlation id of the surrounding ``correlation()`` block, if any."""
    return _context.get().get("correlation_id")


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


class MaskPersonnummer(logging.Filter):
    """Masks anything that looks like a personnummer in the message, its arguments and extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _mask(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation fields and extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in _context.get().items() if v is not None})
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send ``carebridge.*`` records as masked JSON lines to ``stream`` (stderr); returns the handler."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if getattr(h, "_carebridge", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskPersonnummer())
    handler._carebridge = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level if isinstance(level, int) else level.upper())
    logger.propagate = False
    return handler
