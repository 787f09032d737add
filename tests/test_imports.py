"""The import graph of `harness/`: no cycle, and the replica program stands alone.

Every module under ``harness/`` is parsed with `ast`; every import counts, at the top,
inside a function or under ``if TYPE_CHECKING:``, because a cycle through a
function-local import is still a cycle (it only fails later, and in fewer places).
Edges go to the module an import names: ``import harness.a.b`` and ``from harness.a.b
import x`` lead to ``harness.a.b``; ``from harness.a import b`` leads to
``harness.a.b`` when ``harness/a/b.py`` exists (not to the package ``harness.a``);
relative imports are resolved. Importing a submodule is not an edge to its parent
package (Python runs the parent's ``__init__``, but a cycle needs real dependencies).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from harness import images
from harness.toolchain import repo_root

HARNESS = "harness"
REPLICA = "harness.replica"

Graph = dict[str, set[str]]


def module_files(root: Path, package: str = HARNESS) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` under `root`."""
    out: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name `node` may bring in: the module, and module.name per name."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    yield base
    for alias in node.names:
        yield f"{base}.{alias.name}"


def import_graph(root: Path, package: str = HARNESS) -> Graph:
    """Module -> the modules of `package` it imports (see module doc for the rules)."""
    files = module_files(root, package)
    graph: Graph = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = list(_imported(node, name, is_package))
            if isinstance(node, ast.ImportFrom):
                base, members = names[0], names[1:]
                submodules = [m for m in members if m in files]
                # names that are not submodules come from the base module itself
                targets = submodules + ([base] if len(submodules) < len(members) else [])
            else:
                targets = [_longest_module(n, files) for n in names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def _longest_module(dotted: str, files: dict[str, Path]) -> str:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in files:
            return candidate
    return dotted


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components of more than one module (or one importing itself), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def shortest_cycle(graph: Graph, start: str) -> list[str]:
    """The shortest import path from `start` back to itself (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return []


def cycles(graph: Graph) -> list[str]:
    """Every cycle found, as ``a -> b -> a`` lines: per component, the shortest cycle
    through each of its modules (rotations of one cycle are named once)."""
    lines: list[str] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for component in strongly_connected(graph):
        sub = {v: graph[v] & set(component) for v in component}
        for v in component:
            cycle = shortest_cycle(sub, v)
            edges = frozenset(zip(cycle, cycle[1:], strict=False))
            if cycle and edges not in seen:
                seen.add(edges)
                lines.append(" -> ".join(cycle))
    return lines


# ---- the harness --------------------------------------------------------------------------


def test_harness_has_no_import_cycle() -> None:
    found = cycles(import_graph(repo_root()))
    assert not found, "import cycles in harness/:\n  " + "\n  ".join(found)


def test_the_replica_program_imports_nothing_else_of_the_harness() -> None:
    """The replica runs alone in the kms image: only its own subpackage is there."""
    graph = import_graph(repo_root())
    own = {m for m in graph if m == REPLICA or m.startswith(REPLICA + ".")}
    assert own, f"no {REPLICA} package under harness/"
    outside = sorted(f"{m} imports {t}" for m in own for t in graph[m] if t not in own)
    assert not outside, (
        "the replica program must import only its own subpackage (it runs alone in the "
        "kms image): " + "; ".join(outside)
    )


def test_kms_image_inputs_are_the_replica_subpackage() -> None:
    root = repo_root()
    files = module_files(root)
    sources = {p.relative_to(root).as_posix() for m, p in files.items() if m.startswith(REPLICA)}
    inputs = {p.as_posix() for p in images.kms_inputs(root)}
    assert sources <= inputs
    assert inputs - sources == {
        images.KMS_DOCKERFILE,
        images.KMS_REQUIREMENTS,
        "harness/__init__.py",  # Python runs the parent package's __init__ first
    }


def test_a_new_module_of_the_replica_program_is_an_image_input(tmp_path: Path) -> None:
    root = repo_root()
    for rel in images.kms_inputs(root):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((root / rel).read_bytes())
    before = images.content_hash(tmp_path)
    (tmp_path / images.REPLICA_PACKAGE / "extra.py").write_text("x = 1\n")
    assert Path(images.REPLICA_PACKAGE, "extra.py") in images.kms_inputs(tmp_path)
    assert images.content_hash(tmp_path) != before


# ---- the graph rules, on a small tree -------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_edges_follow_every_kind_of_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/a.py": "import harness.pkg.b\n",
            "harness/pkg/__init__.py": "from .b import thing\n",
            "harness/pkg/b.py": "def f():\n    from harness import c, d\nthing = 1\n",
            "harness/c.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from harness.pkg import b\n"
            ),
            "harness/d.py": "from . import e\nfrom .pkg import thing\nimport os\n",
            "harness/e.py": "from harness.pkg.b import thing\n",
        },
    )
    assert import_graph(root) == {
        "harness": set(),
        "harness.a": {"harness.pkg.b"},  # not harness.pkg
        "harness.pkg": {"harness.pkg.b"},
        "harness.pkg.b": {"harness.c", "harness.d"},  # function-local
        "harness.c": {"harness.pkg.b"},  # under TYPE_CHECKING
        "harness.d": {"harness.e", "harness.pkg"},  # relative
        "harness.e": {"harness.pkg.b"},
    }


def test_every_cycle_is_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "harness/__init__.py": "",
            "harness/a.py": "from harness import b\n",
            "harness/b.py": "def late():\n    import harness.a\n",
            "harness/c.py": "from harness.d import x\n",
            "harness/d.py": "from harness.e import y\nx = 1\n",
            "harness/e.py": "from . import c\ny = 2\n",
            "harness/f.py": "import harness.a\n",
        },
    )
    assert cycles(import_graph(root)) == [
        "harness.a -> harness.b -> harness.a",
        "harness.c -> harness.d -> harness.e -> harness.c",
    ]


def test_test_modules_have_unique_basenames() -> None:
    # `make test` collects tests/ and scenarios/ together (rootdir import mode): two
    # modules of one basename make collection fail
    root = repo_root()
    seen: dict[str, str] = {}
    for folder in ("tests", "scenarios"):
        for path in sorted((root / folder).glob("test_*.py")):
            other = seen.setdefault(path.name, folder)
            assert other == folder, f"{folder}/{path.name} and {other}/{path.name}: rename one"
