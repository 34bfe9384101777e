"""Logging: JSON vs key=value, stdlib loggers through the same formatter, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta

import pytest
import structlog

from syncd.app import logs
from syncd.config.schema import Secret


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in lines(stream)]


def test_json_line_has_timestamp_level_logger_and_event():
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    structlog.get_logger("syncd.test").info("sync.started", integration="a", count=3)
    (entry,) = json_lines(out)
    assert entry["event"] == "sync.started"
    assert entry["level"] == "info"
    assert entry["logger"] == "syncd.test"
    assert entry["integration"] == "a" and entry["count"] == 3
    stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("stream_cls, journal, expect_json", [
    (io.StringIO, None, True),  # not a terminal
    (Tty, None, False),  # a terminal
    (Tty, "8:1234", True),  # journald, even if it looks like a terminal
])
def test_auto_picks_json_for_journald_and_pipes(monkeypatch, stream_cls, journal, expect_json):
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", journal)
    out = stream_cls()
    logs.configure("info", "auto", stream=out)
    structlog.get_logger("syncd.test").info("hello", count=3)
    (line,) = lines(out)
    if expect_json:
        assert json.loads(line)["count"] == 3
    else:
        with pytest.raises(ValueError):
            json.loads(line)
        assert "hello" in line and "count=3" in line and "info" in line


def test_console_format_is_key_value_even_when_piped():
    out = io.StringIO()
    logs.configure("info", "console", stream=out)
    structlog.get_logger("syncd.test").warning("retrying", attempt=2, delay=1.5)
    (line,) = lines(out)
    assert "retrying" in line and "attempt=2" in line and "delay=1.5" in line
    assert "warning" in line
    assert "\x1b[" not in line  # no colours


@pytest.mark.parametrize("name", ["waitress", "pykka", "apscheduler.scheduler", "urllib3"])
def test_stdlib_loggers_go_through_the_same_formatter(name):
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    logging.getLogger(name).warning("queue %s is %d deep", "task", 5)
    (entry,) = json_lines(out)
    assert entry["event"] == "queue task is 5 deep"
    assert entry["logger"] == name
    assert entry["level"] == "warning"
    assert "timestamp" in entry


def test_apschedulers_job_chatter_is_quiet_at_info_but_its_warnings_show():
    """Every coordinator timer is an APScheduler job: its "Added job" / "Running job" lines
    would fill the log at info."""
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).info('Added job "timer:main#1:drain" to job store "default"')
        logging.getLogger(name).warning("Run time of job was missed")
    assert [e["level"] for e in json_lines(out)] == ["warning", "warning"]
    logs.configure("debug", "json", stream=out)
    assert logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.INFO)


def test_secrets_are_masked():
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    structlog.get_logger("syncd.test").info(
        "connect", token="t0k", client_secret="cs", password="pw", authorization="Bearer x",
        signature="sig", api_key="k", secret="s", value=Secret("hidden-value"),
        headers={"Authorization": "Bearer y", "Accept": "json"},
        options=[{"webhook_secret": "ws"}], token_file="/var/lib/syncd/admin.token",
        user="jan", nothing_secret=None)
    (entry,) = json_lines(out)
    for key in ("token", "client_secret", "password", "authorization", "signature", "api_key",
                "secret", "value"):
        assert entry[key] == "***", key
    assert entry["headers"] == {"Authorization": "***", "Accept": "json"}
    assert entry["options"] == [{"webhook_secret": "***"}]
    assert entry["token_file"] == "/var/lib/syncd/admin.token"
    assert entry["user"] == "jan"
    assert entry["nothing_secret"] is None
    text = out.getvalue()
    for leak in ("t0k", '"cs"', '"pw"', "Bearer", "sig\"", "hidden-value", '"ws"'):
        assert leak not in text


def test_secrets_are_masked_on_a_terminal_too():
    out = Tty()
    logs.configure("info", "auto", stream=out)
    structlog.get_logger("syncd.test").info("auth", password="hunter2", who=Secret("x-y-z"))
    text = out.getvalue()
    assert "hunter2" not in text and "x-y-z" not in text
    assert "password=***" in text


def test_exceptions_are_plain_traceback_text_without_locals():
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    password = "local-secret-value"  # noqa: F841 - must not appear (no dict_tracebacks)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        structlog.get_logger("syncd.test").exception("job.failed")
        logging.getLogger("apscheduler.executors.default").exception("Job raised")
    first, second = json_lines(out)
    for entry in (first, second):
        assert isinstance(entry["exception"], str)
        assert entry["exception"].startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError: division by zero" in entry["exception"]
    assert "local-secret-value" not in out.getvalue()


def test_configure_twice_keeps_one_handler_and_follows_the_new_stream():
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", "json", stream=first)
    logs.configure("info", "json", stream=second)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_syncd", False)]
    assert len(ours) == 1
    structlog.get_logger("syncd.test").info("once")
    logging.getLogger("waitress").info("also once")
    assert first.getvalue() == ""
    assert [e["event"] for e in json_lines(second)] == ["once", "also once"]


def test_level_filters_structlog_and_stdlib():
    out = io.StringIO()
    logs.configure("warning", "json", stream=out)
    structlog.get_logger("syncd.test").info("dropped")
    logging.getLogger("pykka").info("dropped too")
    structlog.get_logger("syncd.test").warning("kept")
    assert [e["event"] for e in json_lines(out)] == ["kept"]


def test_loggers_created_before_configure_follow_it():
    early = structlog.get_logger("syncd.early")
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    early.info("late")
    assert json_lines(out)[0]["logger"] == "syncd.early"


@pytest.mark.parametrize("level, fmt", [("loud", "json"), ("info", "xml")])
def test_bad_level_or_format_is_refused(level, fmt):
    with pytest.raises(ValueError):
        logs.configure(level, fmt, stream=io.StringIO())
