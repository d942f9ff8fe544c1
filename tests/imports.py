"""The project's import graph read from source with `ast` (nothing is imported): which project modules a
module imports, directly or transitively. Used by the layering test and the DVC-deps test."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from musicgenre.config import PROJECT_ROOT

PACKAGES = ("musicgenre", "stages", "flows", "monitoring")


def module_file(module: str, root: Path = PROJECT_ROOT) -> Path | None:
    """musicgenre.audio -> musicgenre/audio.py, musicgenre.models -> musicgenre/models/__init__.py."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path = PROJECT_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _has_imports(path: Path) -> bool:
    return any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(ast.parse(path.read_text())))


@cache
def direct_imports(path: Path, root: Path = PROJECT_ROOT) -> frozenset[str]:
    """Project modules `path` imports anywhere in its body (a function-level import counts: it may run).

    `from a.b import c` names a.b and, when c is a module, a.b.c; the packages above an imported module
    run their __init__ too, and are counted when that __init__ imports anything (a docstring and
    constants cannot pull in code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = absolute_module(node, path=path, root=root)
            names = [base] + [
                f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}", root)
            ]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in PACKAGES or module_file(name, root) is None:
                continue
            found.add(name)
            parts = name.split(".")
            for depth in range(1, len(parts)):
                parent = ".".join(parts[:depth])
                init = module_file(parent, root)
                if init is not None and _has_imports(init):
                    found.add(parent)
    found.discard(module_name(path, root))
    return frozenset(found)


def absolute_module(node: ast.ImportFrom, *, path: Path, root: Path) -> str:
    """The module an ImportFrom names: `from .x import y` in musicgenre/models/a.py is musicgenre.models.x."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def closure(module: str, root: Path = PROJECT_ROOT) -> set[str]:
    """`module` and every project module it imports, transitively."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(direct_imports(path, root))
    return seen
