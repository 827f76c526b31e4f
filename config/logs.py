"""Log lines that say what they were working on: a context, a filter and a JSON formatter.

Entry points bind the objects they work on (``log_context(job_id=…, organization=…)``);
every line logged inside, by any logger, carries those fields. With ``LOG_FORMAT=json``
each line is one JSON object on stdout; with ``text`` (the default) lines stay plain.
The context lives in a ``ContextVar``, so it follows the code that bound it and is gone
when that code returns. Reads no settings: ``config.settings`` and ``gunicorn.conf.py``
call :func:`logging_config` with what they read from the environment.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: ContextVar[Mapping[str, Any]] = ContextVar("dossier_log_context", default=MappingProxyType({}))


def log_context_current() -> Mapping[str, Any]:
    """The fields bound by the enclosing ``log_context`` blocks (innermost wins)."""
    return _context.get()


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written inside the block (``None`` values are left out)."""
    bound = {key: value for key, value in fields.items() if value is not None}
    token = _context.set(MappingProxyType({**_context.get(), **bound}))
    try:
        yield
    finally:
        _context.reset(token)


def log_context_from(fields: Callable[..., Mapping[str, Any]]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function inside ``log_context(**fields(*args, **kwargs))``.

    ``fields`` receives the call's arguments (accept the ones you need and ``**_``) and
    returns what to bind, for example a job's id and its organization's slug.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with log_context(**fields(*args, **kwargs)):
                return func(*args, **kwargs)

        return wrapper

    return decorate


def log_context_task(func: Callable[P, R]) -> Callable[P, R]:
    """Bind ``task`` (the function's dotted path, as django-q2 queues it) around a task."""
    task = f"{func.__module__}.{func.__qualname__}"
    return log_context_from(lambda *_, **__: {"task": task})(func)


class ContextFilter(logging.Filter):
    """Copy the current log context onto each record (``record.log_context``); lets all through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "log_context"):
            record.log_context = dict(_context.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the context, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = dict(getattr(record, "log_context", None) or {})
        entry.update(
            timestamp=dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(*, log_format: str, level: str = "INFO", own_loggers: Iterable[str] = ()) -> dict[str, Any]:
    """A ``dictConfig`` for ``log_format`` (``text``: plain lines on stderr; ``json``: JSON on stdout).

    ``own_loggers`` (gunicorn's) write through the same handler without also passing their
    records on to the root logger, so each line appears once.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}.")
    json_lines = log_format == "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"plain": {"format": TEXT_FORMAT}, "json": {"()": JsonFormatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if json_lines else "plain",
                "filters": ["context"],
                "stream": "ext://sys.stdout" if json_lines else "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            **{name: {"handlers": ["console"], "propagate": False} for name in own_loggers},
        },
    }
