"""CI habits: .ci/run is the README's test command plus lint and types; tests that start the
daemon as a process are marked slow (a check shown to fail on a dummy)."""

from __future__ import annotations

import re

from meta import ROOT

#: What starts the daemon as a process in the tests.
LAUNCHERS = re.compile(r"\bspawn_daemon\(|\bDaemonProcess\(|\bdaemon_processes\(|\bdaemons\b"
                       r"|Popen\(\[[^\]]*\"run\"")


def unmarked_daemon_tests(sources: dict[str, str]) -> list[str]:
    """Test modules that start the daemon as a process without the ``slow`` mark."""
    return sorted(name for name, text in sources.items()
                  if LAUNCHERS.search(text) and "mark.slow" not in text)


def test_modules_that_start_the_daemon_as_a_process_are_marked_slow():
    sources = {str(p.relative_to(ROOT)): p.read_text()
               for p in (ROOT / "tests").rglob("test_*.py")}
    assert unmarked_daemon_tests(sources) == []


def test_an_unmarked_daemon_test_fails_the_check():
    dummy = {"tests/x/test_dummy.py": "def test_x(tmp_path):\n    spawn_daemon(tmp_path)\n",
             "tests/x/test_marked.py": "import pytest\npytestmark = pytest.mark.slow\n"
                                       "def test_y(daemons):\n    pass\n"}
    assert unmarked_daemon_tests(dummy) == ["tests/x/test_dummy.py"]


def test_ci_runs_the_readme_test_command_then_lint_and_types():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in readme and ".venv-ci/bin/python -m pytest" in ci
    assert "ruff check ." in ci and "-m mypy" in ci
    assert 'exit "$rc"' in ci  # pytest's exit code decides the run
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"RUF"' in pyproject and "[tool.mypy]" in pyproject
    assert '"ruff>=' in pyproject and '"mypy>=' in pyproject


def own_helpers(sources: dict[str, str]) -> list[str]:
    """Test modules that define their own polling or port helper instead of importing the
    shared ones from ``syncd.testing`` (a thin wrapper that delegates to it is allowed)."""
    found = []
    for name, text in sources.items():
        for helper in ("wait_for", "wait_until", "free_port"):
            for body in re.findall(rf"^def {helper}\(.*?(?=^\S)", text + "\nEND", re.S | re.M):
                if "testing." not in body:
                    found.append(f"{name}: {helper}")
    return sorted(found)


def test_polling_and_port_helpers_live_in_syncd_testing():
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "tests").rglob("*.py")}
    assert own_helpers(sources) == []


def test_an_own_polling_helper_fails_the_check():
    dummy = {"tests/x/x_support.py": "import time\n\ndef wait_for(p, timeout=5):\n"
                                     "    while not p():\n        time.sleep(0.1)\n",
             "tests/x/ok_support.py": "def wait_for(p, timeout=15.0):\n"
                                      "    return testing.wait_for(p, timeout)\n"}
    assert own_helpers(dummy) == ["tests/x/x_support.py: wait_for"]
