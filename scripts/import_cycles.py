"""Import cycles among s3tvr's modules: prints each strongly connected component of the import
graph of s3tvr/**.py, one a line, and exits 1 if there is any. Standard library only.

Every ``import`` counts, those inside functions too (a cycle that is broken only by importing
late still ties the two modules together), except those under ``if TYPE_CHECKING:``, which never
run. ``from s3tvr.x import y`` is an edge to s3tvr.x.y when that is a module, else to s3tvr.x.

    python scripts/import_cycles.py [ROOT]     # ROOT: the repository (default: this script's)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "s3tvr"


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py under ROOT/s3tvr (a package is its __init__.py)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, name: str, is_package: bool):
    """(module, names) for each import that runs, relative ones resolved against ``name``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)  # the else branch does run
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, ()
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = name.split(".")[: len(name.split(".")) - child.level + is_package]
                    base = ".".join(parent + ([base] if base else []))
                yield base, tuple(alias.name for alias in child.names)
            stack.append(child)


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the s3tvr modules it imports."""
    known = modules(root)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for module, names in _imports(tree, name, path.name == "__init__.py"):
            if module.split(".")[0] != PACKAGE:
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
            if len(targets) < len(names) or not names:  # a name that is not a submodule comes from the module itself
                targets.append(module)
            edges[name].update(t for t in targets if t in known and t != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent
    found = cycles(graph(root))
    for component in found:
        print(" <-> ".join(component))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
