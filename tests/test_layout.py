"""The layout holds: the runtime (chatbot/, embeddings/) imports no measurement or dev-only
package, and no first-party module imports another that imports it back at module level."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from chatbot.config import REPO_ROOT

RUNTIME = ("chatbot", "embeddings")
FIRST_PARTY = (*RUNTIME, "evaluation", "curation")
# The `eval` and `dev` extras, the measurement package and the curation tools.
FORBIDDEN = (
    "evaluation",
    "curation",
    "psutil",
    "sklearn",
    "ir_measures",
    "nbclient",
    "nbformat",
    "matplotlib",
    "pandas",
    "pytest",
)
# Imports of a forbidden name the runtime may make, with the reason.
ALLOWED = {
    # The two measurement commands import the measurement package after checking it is there.
    ("chatbot.cli", "evaluation"),
    # Gradio depends on pandas and imports it on its first event: the UI pays it at startup.
    ("chatbot.ui", "pandas"),
}


def _modules(package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of a first-party package (its __init__ as the package)."""
    out = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, top_level_only: bool) -> list[str]:
    """Absolute names imported by a module: `from a import b` gives a.b and a (either may be a module).

    With `top_level_only`, only statements run when the module is imported: not in functions
    or classes' methods, not under `if TYPE_CHECKING:`.
    """
    tree = ast.parse(path.read_text("utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                names.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names.append(base)
                names.extend(f"{base}.{a.name}" for a in node.names)
            elif top_level_only and isinstance(node, ast.If):
                visit(node.orelse if _is_type_checking(node.test) else node.body + node.orelse)
            elif top_level_only and isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)
            elif top_level_only and isinstance(node, ast.ClassDef):
                visit(node.body)
            elif top_level_only and isinstance(node, ast.With):
                visit(node.body)

    if top_level_only:
        visit(tree.body)
    else:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                visit([node])
    return names


def test_runtime_source_imports_no_measurement_or_dev_only_package_anywhere():
    found = []
    for package in RUNTIME:
        for module, path in _modules(package).items():
            for name in _imports(module, path, top_level_only=False):
                top = name.partition(".")[0]
                if top in FORBIDDEN and (module, top) not in ALLOWED:
                    found.append(f"{module} importe {name}")
    assert not found, "le code d'exécution importe de quoi mesurer ou développer :\n" + "\n".join(
        sorted(set(found))
    )


# Run in a fresh interpreter: every runtime module imported, and each forbidden module's first
# import attributed to the module whose code asked for it (Gradio itself imports pandas and
# psutil; only our own imports count).
_PROBE = """
import importlib, importlib.abc, json, pkgutil, sys

FORBIDDEN, FIRST_PARTY = set(sys.argv[1].split(",")), tuple(sys.argv[2].split(","))
requests = []

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in FORBIDDEN:
            frame = sys._getframe(1)
            while frame and frame.f_globals.get("__name__", "").startswith("importlib"):
                frame = frame.f_back
            importer = frame.f_globals.get("__name__", "") if frame else ""
            if importer.partition(".")[0] in FIRST_PARTY:
                requests.append([importer, name])
        return None

sys.meta_path.insert(0, Watch())
imported = []
for package in sys.argv[3].split(","):
    root = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rpartition(".")[2] != "__main__":  # would run the command line
            importlib.import_module(info.name)
            imported.append(info.name)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in FORBIDDEN)
print(json.dumps({"imported": imported, "requests": requests, "loaded": loaded}))
"""


def test_importing_every_runtime_module_loads_no_measurement_or_dev_only_package():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            ",".join(FORBIDDEN),
            ",".join(FIRST_PARTY),
            ",".join(RUNTIME),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert {"chatbot.cli", "chatbot.ui", "embeddings.index"} <= set(result["imported"])
    assert not result["requests"], f"importés par notre code : {result['requests']}"
    # Names no runtime dependency imports either: their presence would mean a lazy import of ours.
    never = {"evaluation", "curation", "sklearn", "ir_measures", "nbclient", "nbformat", "pytest"}
    assert not never & {m.partition(".")[0] for m in result["loaded"]}, result["loaded"]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, as the path that closes it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_among_first_party_modules_at_import_time():
    modules = {m: p for package in FIRST_PARTY for m, p in _modules(package).items()}
    graph = {
        m: {
            n
            for n in _imports(m, p, top_level_only=True)
            if n in modules and n != m and not m.startswith(n + ".")  # a package's own __init__
        }
        for m, p in modules.items()
    }
    cycle = _cycle(graph)
    assert cycle is None, "cycle d'imports : " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
