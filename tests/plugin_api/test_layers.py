"""The layers of ``syncd/`` (docs/architecture.md): every import, also one inside a function
or under ``TYPE_CHECKING``, goes down the layers, never up; ``syncd/`` never imports a
connector package. The check is shown to fail on dummy offending modules."""

from __future__ import annotations

import ast
import pathlib

from meta import ROOT

#: The layers, bottom first: a module may import its own layer and those below it.
#: ``base`` is the package's top-level modules (exceptions, metrics, records, engagement,
#: capability names): the values and counters every layer shares.
LAYERS = ("base", "config", "connectors", "engine", "web", "app")
#: What the two modules beside the layers may import: ``syncd.plugin`` re-exports the public
#: API for plugins (any layer but the application); ``syncd.testing``, the pytest plugin,
#: drives the whole daemon.
BESIDE = {"plugin": (*LAYERS[:-1], "plugin"), "testing": (*LAYERS, "plugin", "testing")}
#: Imports let through against the rules, ``(importer, imported) -> reason``. None is.
EXEMPT: dict[tuple[str, str], str] = {}


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, packages: set[str]) -> str:
    """``syncd.engine.store`` -> ``engine``; a top-level module (``syncd.metrics``) -> base."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] in BESIDE:
        return parts[1]
    return parts[1] if parts[1] in packages else "base"


def imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module ``tree`` imports, with its line: ``import``/``from`` anywhere (relative
    ones resolved), and ``importlib.import_module``/``__import__`` of a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:len(module.split(".")) - node.level + is_package]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name == "syncd":  # ``from syncd import app`` imports the package syncd.app
                found += [(node.lineno, f"syncd.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value.split(":")[0]))
    return sorted(found)


def violations(root: pathlib.Path) -> list[str]:
    """Each import under ``root/syncd`` against the layers: ``path:line: module (layer)
    imports name (layer): rule``."""
    package = root / "syncd"
    packages = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    out = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, root)
        mine = layer_of(module, packages)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, name in imports(tree, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            where = f"{path.relative_to(root)}:{line}: {module} ({mine}) imports {name}"
            if top.startswith("syncd_"):
                out.append(f"{where}: syncd/ never imports a connector package; the plugin "
                           "registers itself through its entry point")
                continue
            if top != "syncd" or (module, name) in EXEMPT:
                continue
            theirs = layer_of(name, packages)
            allowed = BESIDE.get(mine) or LAYERS[:LAYERS.index(mine) + 1]
            if theirs not in allowed:
                out.append(f"{where} ({theirs}): {mine} may import only "
                           f"{', '.join(allowed)}")
    return out


def test_every_import_in_syncd_goes_down_the_layers():
    assert violations(ROOT) == []


def test_the_layers_are_the_folders_of_syncd():
    folders = {p.name for p in (ROOT / "syncd").iterdir() if (p / "__init__.py").exists()}
    assert folders == {*LAYERS[1:], "testing"}
    assert all(layer_of(f"syncd.{m.stem}", folders) == "base"
               for m in (ROOT / "syncd").glob("*.py") if m.stem != "plugin")
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert " < ".join(f"`{layer}`" for layer in LAYERS) in text


def test_the_exemptions_are_still_needed_and_say_why():
    for (importer, imported), reason in EXEMPT.items():
        assert reason.strip(), importer
        path = ROOT / (importer.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert imported in {n for _, n in imports(tree, importer, False)}, (importer, imported)


def write(root: pathlib.Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_an_import_against_the_layers_fails_the_check(tmp_path):
    """Upward imports at the top, in a function, under TYPE_CHECKING, relative, or by name;
    and connector packages from any layer, also the test kit."""
    write(tmp_path, {
        "syncd/__init__.py": "",
        "syncd/metrics.py": "import prometheus_client\n",
        **{f"syncd/{p}/__init__.py": "" for p in (*LAYERS[1:], "testing")},
        "syncd/plugin.py": "from syncd.engine.store import Store\n",
        "syncd/engine/ok.py": "from syncd import metrics\nfrom syncd.config.model import Config\n"
                              "from . import store\nfrom ..connectors import connection\n",
        "syncd/engine/bad.py": "import typing\nfrom syncd import app, records\n"
                               "if typing.TYPE_CHECKING:\n    from syncd.web.receiver import X\n"
                               "def f():\n    from syncd.app import daemon\n"
                               "from ..app.cli import main\n",
        "syncd/connectors/lazy.py": "import importlib\n"
                                    "def g():\n    return importlib.import_module('syncd.engine.x')\n",
        "syncd/config/__init__.py": "import syncd_tribe.connector\n",
        "syncd/metrics_extra.py": "from syncd.config import model\n",
        "syncd/web/x.py": "import syncd.testing\nfrom syncd.plugin import Record\n",
        "syncd/testing/kit.py": "from syncd.app import daemon\nfrom syncd_lime import schema\n",
    })
    rule = "engine may import only base, config, connectors, engine"
    assert violations(tmp_path) == [
        "syncd/config/__init__.py:1: syncd.config (config) imports syncd_tribe.connector: "
        "syncd/ never imports a connector package; the plugin registers itself through its "
        "entry point",
        "syncd/connectors/lazy.py:3: syncd.connectors.lazy (connectors) imports syncd.engine.x "
        "(engine): connectors may import only base, config, connectors",
        f"syncd/engine/bad.py:2: syncd.engine.bad (engine) imports syncd.app (app): {rule}",
        f"syncd/engine/bad.py:4: syncd.engine.bad (engine) imports syncd.web.receiver (web): "
        f"{rule}",
        f"syncd/engine/bad.py:6: syncd.engine.bad (engine) imports syncd.app (app): {rule}",
        f"syncd/engine/bad.py:7: syncd.engine.bad (engine) imports syncd.app.cli (app): {rule}",
        "syncd/metrics_extra.py:1: syncd.metrics_extra (base) imports syncd.config (config): "
        "base may import only base",
        "syncd/testing/kit.py:2: syncd.testing.kit (testing) imports syncd_lime: syncd/ never "
        "imports a connector package; the plugin registers itself through its entry point",
        "syncd/web/x.py:1: syncd.web.x (web) imports syncd.testing (testing): web may import "
        "only base, config, connectors, engine, web",
        "syncd/web/x.py:2: syncd.web.x (web) imports syncd.plugin (plugin): web may import "
        "only base, config, connectors, engine, web",
    ]


def test_an_exemption_lets_its_import_through(tmp_path, monkeypatch):
    write(tmp_path, {"syncd/__init__.py": "", "syncd/engine/__init__.py": "",
                     "syncd/app/__init__.py": "", "syncd/engine/x.py": "from syncd.app import y\n"})
    assert len(violations(tmp_path)) == 1
    monkeypatch.setitem(EXEMPT, ("syncd.engine.x", "syncd.app"), "a reason")
    assert violations(tmp_path) == []
