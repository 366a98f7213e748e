"""The code a logged model carries (MLflow's ``code_paths``): only the ``hwr`` modules that loading
and using the model can import, found by reading the sources with ``ast``, not the whole package.

MLflow's artifact repository over HTTP (a team's ``mlflow server``) uploads a model's files one by
one, about 0.13 s each against the team stack of ``make server``: the whole package (77 files)
cost about 10 s per model, its import closure (10 or 22 files) a quarter of that or less.

MLflow's own ``infer_code_paths`` does the same for pyfunc models only, by loading the model in a
subprocess, and only for files under the working directory; this works for both of a run's models,
from an installed package and from the zip a Spark executor imports ``hwr`` from, and counts
imports inside functions (a model's lazy imports run at load or predict time).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Callable, Iterable

PACKAGE = __name__.split(".")[0]


def imported_modules(source: str, package: str, is_module: Callable[[str], bool]) -> set[str]:
    """Every module that the Python ``source`` imports, by absolute name, imports inside functions
    included. ``from a import b`` counts as ``a.b`` where ``is_module("a.b")``, else as ``a``;
    ``package`` (the package the source's module lies in) resolves relative imports.

    Raises ``SyntaxError`` for source that is not Python."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found.update(f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base for a in node.names)
    return found


def _spec(name: str):
    """The import spec of ``name`` when it is a module of this package, else None."""
    if name.split(".")[0] != PACKAGE:
        return None
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # e.g. "hwr.errors.ConfigError": hwr.errors is no package
        return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(roots: Iterable[str]) -> dict[str, str]:
    """The modules of this package that importing ``roots`` (module names) can import, directly
    or through each other, with their packages: ``module name -> source text``.

    Raises ``ModuleNotFoundError`` for a root that is no module of this package."""
    todo, sources = [p for root in roots for p in _with_parents(root)], {}
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        spec = _spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not a module of the {PACKAGE} package")
        sources[name] = spec.loader.get_source(name)
        package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        for imported in imported_modules(sources[name], package, lambda n: _spec(n) is not None):
            if _spec(imported) is not None:
                todo.extend(_with_parents(imported))
    return sources


def module_file(name: str) -> Path:
    """The relative source path of module ``name`` of this package, e.g. ``hwr/model/crnn.py``
    (``hwr/model/__init__.py`` for the package ``hwr.model``)."""
    relative = Path(*name.split("."))
    is_package = _spec(name).submodule_search_locations is not None
    return relative / "__init__.py" if is_package else relative.with_suffix(".py")


def write_code(roots: Iterable[str], target: Path) -> Path:
    """Write :func:`import_closure` of ``roots`` under ``target`` as source files (``target /
    module_file(name)``) and return the package folder ``target/hwr``: the one entry of
    ``code_paths`` a logged model needs."""
    for name, source in import_closure(roots).items():
        path = target / module_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return target / PACKAGE
