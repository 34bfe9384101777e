"""Logging, configured once: structlog events and stdlib records (pykka, apscheduler,
waitress, urllib3, requests) go through one handler on the root logger and one formatter.

- JSON lines when ``fmt == "json"``, or ``fmt == "auto"`` and the output is journald
  (``JOURNAL_STREAM`` is set) or not a terminal; ``key=value`` lines on a terminal.
- Every line has an ISO-8601 UTC ``timestamp``, the ``level``, the ``logger`` name and the
  ``event``.
- Values of keys that look secret (``token``, ``password``, ``signature``, ...) and every
  :class:`~syncd.config.schema.Secret` become ``***``.
- Exceptions are plain traceback text (``format_exc_info``). Never ``dict_tracebacks``: it
  logs the locals of every frame, secrets included.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict

from syncd.config.schema import Secret

MASK = "***"
#: Key names whose values are never logged.
_SECRET_KEY = re.compile(r"secret|token|password|passwd|authorization|signature|api_?key|"
                         r"cookie|credential", re.IGNORECASE)
#: ...unless the key names where the secret is, not the secret (``token_file``).
_NOT_SECRET_KEY = re.compile(r"_(file|path|env|source)$", re.IGNORECASE)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}
_FORMATS = ("auto", "json", "console")


def _secret_key(key: Any) -> bool:
    return (isinstance(key, str) and key != "event" and _SECRET_KEY.search(key) is not None
            and _NOT_SECRET_KEY.search(key) is None)


def _mask(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Secret):
        return MASK
    if depth >= 4:
        return value
    if isinstance(value, dict):
        return {k: MASK if _secret_key(k) and v is not None else _mask(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v, depth + 1) for v in value)
    return value


def mask_secrets(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: secret-looking keys and :class:`Secret` values become ``***``
    (also one level into dicts and lists, e.g. a ``headers`` mapping)."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):
            continue
        if _secret_key(key) and value is not None:
            event_dict[key] = MASK
        else:
            event_dict[key] = _mask(value)
    return event_dict


def use_json(fmt: str, stream: TextIO) -> bool:
    """Whether ``fmt`` means JSON lines on ``stream``."""
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    if os.environ.get("JOURNAL_STREAM"):
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return True


class _Handler(logging.StreamHandler[TextIO]):
    """syncd's own handler: configuring again replaces it, never another's handler."""

    _syncd = True


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger. Calling it again replaces the
    previous set-up (another level, format or stream) without adding a second handler."""
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(_FORMATS)}")
    stream = stream if stream is not None else sys.stderr
    as_json = use_json(fmt, stream)

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        tail: list[Any] = [structlog.processors.format_exc_info,
                           structlog.processors.JSONRenderer(default=str)]
    else:
        tail = [structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    mask_secrets, *tail],
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Loggers are module globals created before configure(); no caching keeps them
        # following the current configuration.
        cache_logger_on_first_use=False,
    )

    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level.lower()])
    # Chatty libraries stay at WARNING unless we debug (APScheduler says "Added job" and
    # "Running job" for every timer of a coordinator: syncd.engine.timers).
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("urllib3", "requests", "apscheduler.scheduler",
                 "apscheduler.executors.default"):
        logging.getLogger(name).setLevel(max(quiet, _LEVELS[level.lower()]))
    logging.captureWarnings(True)
