"""The package's own imports, read from the source with ``ast`` (imports inside functions too; no third-party tool).

- No circle between the top-level packages and modules of ``src/neuronkit`` (``nn``, ``train``, ``tensor``, ...): each
  layer imports only from below it (engine -> networks and learning -> insight and use).
- No private name used outside the module that defines it: ``from x import _y``, ``x._y`` on an imported module or
  object, and no private module (``pkg/_m.py``) imported from outside its package.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Private uses allowed for now, as {why: predicate on a Use}: none left. An entry added while a fix is under way must go
# when the fix lands: test_the_exceptions_are_still_needed fails while an entry matches nothing.
EXCEPTIONS: dict = {}


@dataclass(frozen=True)
class Use:
    """``user`` (a module) uses ``name`` of ``owner`` (a module) at ``line``; ``module``: the name is a submodule."""

    user: str
    line: int
    owner: str
    name: str
    module: bool = False

    def __str__(self) -> str:
        return f"{self.user}:{self.line} uses {self.name} of {self.owner}"


def modules(src: Path, package: str) -> dict:
    """Dotted module name -> path, for every ``.py`` file of ``package`` under ``src``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(src: Path, package: str) -> tuple:
    """``(edges, uses)``: ``edges`` is a list of (importer, imported module, line) within ``package``; ``uses`` lists
    every name taken from another module of the package (``from m import name``, and ``alias.attr`` on any name
    bound by such an import), as ``Use`` records."""
    mods = modules(src, package)
    edges, uses = [], []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        bound = {}  # local name -> the module it was imported from (or the module it is)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                if not target.split(".")[0] == package:
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    submodule = full in mods
                    edges.append((name, full if submodule else target, node.lineno))
                    uses.append(Use(name, node.lineno, target, alias.name, submodule))
                    bound[alias.asname or alias.name] = full if submodule else target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        edges.append((name, alias.name, node.lineno))
                        parts = alias.name.split(".")
                        for i in range(1, len(parts)):
                            uses.append(Use(name, node.lineno, ".".join(parts[:i]), parts[i], True))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
                # ``module.attr`` reads a name of that module; ``Class.attr`` one of the module that defines Class
                uses.append(Use(name, node.lineno, bound[node.value.id], node.attr))
    return edges, uses


def unit(module: str) -> str:
    """The top-level package or module a dotted name belongs to (``neuronkit.nn.layers.conv`` -> ``nn``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def circles(edges) -> list:
    """Each set of top-level units that import one another in a circle, with the imports that close it."""
    graph = {}
    for a, b, line in edges:
        ua, ub = unit(a), unit(b)
        if ua and ub and ua != ub and ua != "__main__":
            graph.setdefault(ua, {}).setdefault(ub, []).append(f"{a}:{line} imports {b}")
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                how = [line for a in comp for b in comp if b in graph.get(a, {}) for line in graph[a][b]]
                found.append((sorted(comp), how))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_uses(uses) -> list:
    """The uses of a private name outside its module, and of anything in a private module (``pkg/_m.py``) or of that
    module itself outside its package."""
    bad = []
    for u in uses:
        if u.user == u.owner:
            continue
        parts = u.owner.split(".")
        hidden = next((i for i, p in enumerate(parts) if _private(p)), None)
        if hidden is not None and not _inside(u.user, ".".join(parts[:hidden])):
            bad.append(u)
        elif _private(u.name) and not (u.module and _inside(u.user, u.owner)):
            bad.append(u)
    return bad


def test_no_import_circle_between_top_level_packages_and_modules():
    edges, _ = imports(SRC, "neuronkit")
    found = circles(edges)
    assert not found, "import circles:\n" + "\n".join(f"{' <-> '.join(c)}:\n  " + "\n  ".join(h) for c, h in found)


def test_no_private_name_is_used_outside_its_module():
    _, uses = imports(SRC, "neuronkit")
    bad = [u for u in private_uses(uses) if not any(allowed(u) for allowed in EXCEPTIONS.values())]
    assert not bad, "private names used outside their module:\n" + "\n".join(map(str, bad))


def test_the_exceptions_are_still_needed():
    _, uses = imports(SRC, "neuronkit")
    bad = private_uses(uses)
    stale = [why for why, allowed in EXCEPTIONS.items() if not any(allowed(u) for u in bad)]
    assert not stale, f"fixed, so delete these entries of EXCEPTIONS: {stale}"


@pytest.fixture
def fake_package(tmp_path):
    """A small package with one import circle (a <-> b, through a function-level import) and each kind of private use,
    to show that the checks above can fail."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from .core import thing\n",
        "pkg/a/core.py": "from .. import b\n\n\ndef thing():\n    return b.helper()\n",
        "pkg/a/_impl.py": "VALUE = 1\n",
        "pkg/a/user.py": "from ._impl import VALUE\nfrom .core import thing\n",
        "pkg/b.py": ("def helper():\n    from .a import core\n\n    return core\n\n\ndef _secret():\n    return 1\n"),
        "pkg/c.py": (
            "from . import b\nfrom .a._impl import VALUE\nfrom .b import _secret\n\n\n"
            "def f():\n    return b._secret() + VALUE + _secret()\n"
        ),
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_checks_find_a_planted_circle_and_planted_private_uses(fake_package):
    edges, uses = imports(fake_package, "pkg")
    found = circles(edges)
    assert [c for c, _ in found] == [["a", "b"]]
    assert any("pkg.b:" in h and "imports pkg.a.core" in h for h in found[0][1])  # the function-level import
    bad = sorted(str(u) for u in private_uses(uses))
    assert bad == [
        "pkg.c:2 uses VALUE of pkg.a._impl",  # a name from a private module, outside its package
        "pkg.c:3 uses _secret of pkg.b",  # a private name imported
        "pkg.c:7 uses _secret of pkg.b",  # a private name read from an imported module
    ], bad
