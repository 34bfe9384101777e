"""CI habits: .ci/run is the README's test command plus lint and types; tests that start the
daemon as a process are marked slow, and start it (or any process that outlives a call) only
through ``syncd.testing``'s launcher (checks shown to fail on dummies)."""

from __future__ import annotations

import ast
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


#: Calls that start a process which outlives the call: only ``syncd.testing``'s launcher
#: (``DaemonProcess``, ``ChildProcess``) may, so that none leaks and every log is kept.
SPAWNS = re.compile(r"(^|\.)(Popen|spawn[lv]p?e?|posix_spawnp?|exec[lv]p?e?|fork|"
                    r"create_subprocess_(exec|shell))$|^multiprocessing\.Process$")
#: Calls that run a command to completion: ``syncd run`` through one of them is a launcher too.
RUNS = re.compile(r"(^|\.)(run|call|check_call|check_output|syncd_cli)$")


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def own_launches(sources: dict[str, str]) -> list[str]:
    """Places in test code that start a process by themselves (``Popen`` and its kin), run
    ``syncd run`` with any helper, or build the daemon (``Daemon(...)``) to run it on a
    thread, instead of through ``syncd.testing``'s launchers (``DaemonProcess``,
    ``InProcessDaemon``)."""
    found = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = dotted(node.func)
            words = [c.value for arg in node.args for c in ast.walk(arg)
                     if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if SPAWNS.search(func) or func.split(".")[-1] == "Daemon" or (
                    RUNS.search(func) and "run" in words and (
                    func.endswith("syncd_cli") or any("syncd" in w for w in words))):
                found.append(f"{name}:{node.lineno}: {func}")
    return sorted(found)


def test_no_test_starts_a_process_or_a_daemon_but_through_the_shared_launchers():
    paths = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "examples").glob("*/tests/**/*.py")]
    assert own_launches({str(p.relative_to(ROOT)): p.read_text() for p in paths}) == []


def test_a_test_that_starts_the_daemon_by_itself_fails_the_check():
    dummy = {
        "tests/x/test_popen.py": "import subprocess, sys\n"
        "def test_x(cfg):\n"
        "    p = subprocess.Popen([sys.executable, '-m', 'syncd.app.cli', 'run', '-c', cfg])\n",
        "tests/x/x_support.py": "from subprocess import Popen\n"
        "def spawn(cfg):\n    return Popen([sys.executable, LAUNCHER, cfg])\n",
        "tests/x/test_run.py": "import subprocess\n"
        "def test_y(cfg):\n    subprocess.run(['syncd', 'run', '-c', cfg], timeout=5)\n"
        "def test_z(cfg):\n    syncd_cli('run', '-c', cfg)\n",
        "tests/x/test_thread.py": "from syncd.app.daemon import Daemon\n"
        "def test_t(cfg):\n    d = Daemon(cfg, install_signals=False)\n"
        "    threading.Thread(target=d.serve).start()\n",
        "tests/x/test_ok.py": "import subprocess\n"
        "def test_ok(daemons, inprocess_daemons, cfg, venv):\n"
        "    daemons(cfg).start().wait_ready()\n    inprocess_daemons(cfg).start()\n"
        "    syncd_cli('status', '-c', cfg)\n"
        "    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)\n",
    }
    assert own_launches(dummy) == [
        "tests/x/test_popen.py:3: subprocess.Popen", "tests/x/test_run.py:3: subprocess.run",
        "tests/x/test_run.py:5: syncd_cli", "tests/x/test_thread.py:3: Daemon",
        "tests/x/x_support.py:3: Popen"]
