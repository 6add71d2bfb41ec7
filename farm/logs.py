"""Logging of every long-running farm service, as text or as one JSON object a line.

``--log-format json`` (validators, coordinator, distribution node, builders) makes each
line an object an operator can follow across hosts::

    {"ts": "2026-12-05T07:01:02.345Z", "level": "INFO", "logger": "builders.tasks",
     "message": "...", "service": "builder", "host": "b1", "build_id": "...",
     "builder_id": "..."}

``build_id`` and ``builder_id`` appear where there is one: bound for a stretch of work
with :func:`bind` (a context variable, so a Celery task's or a scheduler pass's lines
all carry them, whatever module logs them), or given per line with
``extra={"build_id": ...}``. :func:`setup_logging` installs one handler on the root
logger; uvicorn's loggers propagate to it (run uvicorn with ``log_config=None``).

Invariants: a JSON line is always one valid JSON object with the five keys ``ts``,
``level``, ``logger``, ``message``, ``service`` and ``host``; an exception's traceback
goes into ``exc_info`` of the same object, never onto lines of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

__all__ = [
    "BOUND_KEYS",
    "JsonFormatter",
    "LogFormat",
    "LogFormatOption",
    "Service",
    "bind",
    "setup_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The line of ``--log-format text`` (what the services printed before)."""

BOUND_KEYS = ("build_id", "builder_id")
"""Fields a line carries when bound (:func:`bind`) or given with ``extra=``."""

_bound: ContextVar[dict[str, str] | None] = ContextVar("farm_log_bound", default=None)

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class LogFormat(StrEnum):
    """``--log-format``: human text or one JSON object per line."""

    text = "text"
    json = "json"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar="FARM_LOG_FORMAT",
        help="text, or json: one object per line (farm.logs).",
    ),
]
"""Every service command's ``--log-format`` option (default: text)."""


class Service(StrEnum):
    """The ``service`` field of a JSON line."""

    validator = "validator"
    coordinator = "coordinator"
    distribution = "distribution"
    builder = "builder"


@contextlib.contextmanager
def bind(**ids: str) -> Iterator[None]:
    """Add ``ids`` (e.g. ``build_id=...``) to every line logged in this context."""
    token = _bound.set({**(_bound.get() or {}), **ids})
    try:
        yield
    finally:
        _bound.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, service: str, host: str | None = None) -> None:
        super().__init__()
        self.service = service
        self.host = host or socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "host": self.host,
        }
        bound = _bound.get() or {}
        for key in BOUND_KEYS:
            value = getattr(record, key, None) or bound.get(key)
            if value:
                line[key] = str(value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """The text line, with the bound ids appended when there are some."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        bound = _bound.get() or {}
        ids = [
            f"{key}={value}"
            for key in BOUND_KEYS
            if (value := getattr(record, key, None) or bound.get(key))
        ]
        return f"{text} [{' '.join(ids)}]" if ids else text


def setup_logging(service: Service, fmt: LogFormat | str, level: str = "INFO") -> None:
    """Send every log line of this process to stderr in ``fmt``, at ``level``.

    Replaces the root logger's handlers with one; uvicorn's loggers lose theirs and
    propagate to it, and Python warnings are logged (``py.warnings``) instead of printed.
    Raises ValueError for an unknown format or level.
    """
    fmt = LogFormat(fmt)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service.value) if fmt is LogFormat.json else _TextFormatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in UVICORN_LOGGERS:
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(logging.NOTSET)
    logging.captureWarnings(True)  # warnings become lines of logger "py.warnings" too
