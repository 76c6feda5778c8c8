"""The torch-free runtime stays Python 3.8 compatible (JetPack 5 ships Python 3.8), checked
statically: no interpreter older than the venv's is available here.

Every module the runtime imports must parse as Python 3.8, keep PEP 585/604 annotations
(`list[int]`, `str | None`) unevaluated with `from __future__ import annotations`, and use
builtin generics nowhere else; where `vermin` is installed it checks the library calls too.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "okdhp_edge"
FILES = sorted([*PACKAGE.glob("*.py"), *(PACKAGE / "runtime").rglob("*.py")])  # the core at the root, the runtime
GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _annotations(tree: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            found += [
                a.annotation
                for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                if a is not None and a.annotation is not None
            ]
            found += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def _new_style(expr: ast.AST) -> bool:
    """True when `expr` uses `X | Y` or a builtin generic `list[...]` (3.9/3.10 when evaluated)."""
    return any(
        isinstance(n, ast.BinOp)
        and isinstance(n.op, ast.BitOr)
        or isinstance(n, ast.Subscript)
        and isinstance(n.value, ast.Name)
        and n.value.id in GENERICS
        for n in ast.walk(expr)
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtime_module_is_python_38_compatible(path):
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 8))  # match, except*, (with ...) fail here
    future = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    annotations = _annotations(tree)
    if not future:
        assert not any(_new_style(a) for a in annotations), f"{path.name}: add `from __future__ import annotations`"
    in_annotation = {id(n) for a in annotations for n in ast.walk(a)}
    evaluated = [
        n
        for n in ast.walk(tree)
        if id(n) not in in_annotation
        and isinstance(n, ast.Subscript)
        and isinstance(n.value, ast.Name)
        and n.value.id in GENERICS
    ]
    assert not evaluated, (
        f"{path.name}:{evaluated[0].lineno}: `{ast.unparse(evaluated[0])}` is evaluated at run time (3.9+); use typing"
    )


def _have_vermin() -> bool:
    """The vermin package itself, not any folder named vermin on sys.path (a namespace package has no origin)."""
    spec = importlib.util.find_spec("vermin")
    return spec is not None and spec.origin is not None


@pytest.mark.skipif(not _have_vermin(), reason="vermin is not installed (pip install vermin)")
def test_vermin_finds_nothing_newer_than_python_38():
    args = ["--no-tips", "-t=3.8-", "--violations", *map(str, FILES)]
    done = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
