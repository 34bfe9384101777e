"""The public plugin API: plugins import syncd only through ``syncd.plugin``."""

from __future__ import annotations

import ast
import pathlib

import syncd.plugin

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Names other plugins build on; removing or renaming one breaks them (add, never rename).
STABLE = {
    "hookimpl", "Connector", "Capability", "Option", "Secret", "Record", "Event", "Page",
    "Profile", "Consent", "ConsentChange", "WriteResult", "SchemaNeeds", "SchemaProblem",
    "NeedKind", "SyncdError", "RemoteError", "AuthError", "WebhookRejected", "HttpClient",
    "RateBudget", "Emulator", "TokenIssuer", "Request", "Router", "HTTPError",
}


def syncd_imports(path: pathlib.Path) -> list[str]:
    """The ``syncd`` modules (not ``syncd_*`` packages) a source file imports from."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [m for m in modules if m == "syncd" or m.startswith("syncd.")]
    return found


def test_every_public_name_is_importable():
    for name in syncd.plugin.__all__:
        assert getattr(syncd.plugin, name) is not None, name
    assert len(set(syncd.plugin.__all__)) == len(syncd.plugin.__all__)


def test_stable_names_stay():
    assert STABLE <= set(syncd.plugin.__all__)


def test_first_party_plugins_import_syncd_only_through_syncd_plugin():
    offenders = {}
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        wrong = [m for m in syncd_imports(path) if m not in ("syncd.plugin", "syncd.testing")]
        if wrong:
            offenders[str(path.relative_to(ROOT))] = wrong
    assert offenders == {}


def test_the_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from syncd.records import Record\nimport syncd.plugin\n")
    assert syncd_imports(bad) == ["syncd.records", "syncd.plugin"]
