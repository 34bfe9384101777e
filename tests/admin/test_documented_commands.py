"""Every `syncd ...` command quoted in README.md, etc/syncd.toml and the systemd unit parses
with the CLI's own argparse parser (parsed only, never run), so the docs cannot name a command,
subcommand or flag that does not exist."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from syncd.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "etc/syncd.toml", "systemd/syncd.service")
#: Placeholders the docs use, and a value of the right shape for each.
PLACEHOLDERS = {"FILE": "/etc/syncd/syncd.toml", "NAME": "tribe-apsis", "RUN": "12",
                "OV": "Jansens", "KIND": "tribe", "N": "8470", "ID": "3",
                "INTEGRATION": "tribe-apsis", "OVERVIEW": "Jansens"}
_SYNCD = re.compile(r"^(?:\S*/)?syncd$")  # syncd, /usr/bin/syncd, .venv/bin/syncd


def _lines(name: str) -> list[str]:
    text = (ROOT / name).read_text(encoding="utf-8")
    if name == "README.md":
        return text.splitlines()
    return [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]  # comments as text


def _command(words: str) -> str | None:
    """``words`` if they are a syncd invocation with a subcommand."""
    parts = words.split()
    return words if len(parts) > 1 and _SYNCD.match(parts[0]) else None


def quoted_commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in DOCS:
        lines = _lines(name)
        # inline code, which may wrap over lines
        for match in re.finditer(r"`([^`]+)`", "\n".join(lines)):
            command = _command(" ".join(match[1].split()))
            if command:
                found.append((name, command))
        for line in lines:
            code = None
            if name == "README.md" and line.startswith("    "):  # an indented code block
                code = re.split(r"\s{2,}|\s#", line.strip())[0]  # drop the description column
            elif line.startswith(("ExecStart=", "ExecReload=")):
                code = line.split("=", 1)[1]
            for part in (code or "").split("&&"):
                command = _command(part.strip())
                if command:
                    found.append((name, command))
    return found


def argv_of(command: str) -> list[str]:
    words = shlex.split(command.replace("[", " ").replace("]", " "))[1:]
    return [PLACEHOLDERS.get(w, w) for w in words if w != "..."]


COMMANDS = list(dict.fromkeys(quoted_commands()))


def test_the_docs_quote_the_commands_users_need():
    quoted = {c for _, c in COMMANDS}
    assert len(quoted) >= 20, quoted
    for expected in ("syncd events retry [ID ...]", "syncd run -c /etc/syncd/syncd.toml",
                     "syncd sync start NAME --confirm"):
        assert any(expected in c for c in quoted), (expected, sorted(quoted))
    assert not any(re.search(r"syncd (replay|sync --confirm)\b", c) for c in quoted), quoted


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_every_quoted_command_parses(where, command):
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv_of(command))
    except SystemExit:
        pytest.fail(f"{where} quotes `{command}`, which the CLI refuses: {err.getvalue()}")
    assert getattr(args, "func", None) is not None, f"{where}: `{command}` runs nothing"
