"""The import contract: nothing imports upward.

Layers, lowest first: compiler (inside it: algebra < ir < codegen), kernels, fastmm (the
runtime), bench and search. Every ``import``/``from ... import`` in every module of the
repository is checked, those inside functions included: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# package -> packages it must never import
FORBIDDEN = {
    "compiler": ("fastmm", "search", "bench", "kernels"),
    "kernels": ("fastmm", "search", "bench"),
    "fastmm": ("search", "bench"),
    "compiler.algebra": ("compiler.ir", "compiler.codegen"),
    "compiler.ir": ("compiler.codegen",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool):
    """(line, imported module) for every import statement, relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:                  # "from compiler import codegen"
                yield node.lineno, f"{name}.{alias.name}"


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations() -> list[str]:
    found = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] not in ("compiler", "kernels", "fastmm", "search", "bench"):
            continue
        module = module_name(path)
        tree = ast.parse(path.read_text(), str(rel))
        rules = [(pkg, bad) for pkg, bad in FORBIDDEN.items() if within(module, pkg)]
        for line, name in imported(tree, module, path.name == "__init__.py"):
            for pkg, bad in rules:
                for target in bad:
                    if within(name, target):
                        found.append(f"{rel}:{line}: {pkg} -> {target} (imports {name})")
    return sorted(set(found))


def test_nothing_imports_upward():
    bad = violations()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_sees_function_level_and_relative_imports():
    tree = ast.parse("def f():\n    from ..codegen import backends\n    import fastmm\n")
    names = {name for _, name in imported(tree, "compiler.algebra.x", False)}
    assert {"compiler.codegen", "compiler.codegen.backends", "fastmm"} <= names
