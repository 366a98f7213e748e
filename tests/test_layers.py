"""The package's layers: every import inside ``hwr`` points down the layers (or stays in its own
subpackage), no import cycle exists, and the lower layers never import MLflow or TensorFlow.
Read from the source with ``ast`` (:func:`hwr.mlflow.code_paths.imported_modules`: imports inside
functions count too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from hwr.mlflow.code_paths import imported_modules

# Bottom to top; a module may import its own subpackage and the layers below it.
LAYERS = [
    ("hwr.errors",),
    ("hwr.config",),
    ("hwr.data",),
    ("hwr.evaluation",),
    ("hwr.model",),
    ("hwr.mlflow",),
    ("hwr.training", "hwr.prediction"),
    ("hwr.tuning", "hwr.promotion"),
    ("hwr.cli", "hwr.serving"),  # command-line plumbing; compatibility alias for old models
]
NO_MLFLOW = ("hwr.errors", "hwr.config", "hwr.data", "hwr.evaluation", "hwr.model")
NO_TENSORFLOW = ("hwr.errors", "hwr.config")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "hwr").rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports (``from a import b`` is ``a.b`` when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_modules(path.read_text(encoding="utf-8"), package, known.__contains__)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) for name, path in found.items()}


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, subpackage) of an hwr module; None for the package root and for other packages."""
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return rank, prefix
    return None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in edges.items():
        here = layer_of(module)
        for target in targets:
            there = layer_of(target)
            if here is None or there is None or there[1] == here[1]:
                continue
            if there[0] >= here[0]:
                bad.append(f"{module} imports {target} (layer {there[1]} is not below {here[1]})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among hwr modules (each found once, by depth-first search)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(t for t in edges.get(node, ()) if t in edges):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_has_a_layer():
    assert [m for m in modules() if m != "hwr" and layer_of(m) is None] == []


def test_imports_point_down_the_layers():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    fake = {"hwr.data.labels": {"hwr.mlflow.runs"}, "hwr.mlflow.runs": {"hwr.data.labels"},
            "hwr.training.steps": {"hwr.prediction.predict"}, "hwr.prediction.predict": set()}
    assert upward_imports(fake) == [
        "hwr.data.labels imports hwr.mlflow.runs (layer hwr.mlflow is not below hwr.data)",
        "hwr.training.steps imports hwr.prediction.predict (layer hwr.prediction is not below hwr.training)"]
    assert cycles(fake) == [["hwr.data.labels", "hwr.mlflow.runs", "hwr.data.labels"]]


@pytest.mark.parametrize("layer, forbidden", [(p, "mlflow") for p in NO_MLFLOW]
                         + [(p, lib) for p in NO_TENSORFLOW for lib in ("tensorflow", "keras")])
def test_lower_layers_do_not_import_heavy_libraries(layer, forbidden):
    offenders = [m for m, targets in graph().items() if layer_of(m) and layer_of(m)[1] == layer
                 and any(t == forbidden or t.startswith(forbidden + ".") for t in targets)]
    assert offenders == []


def test_imports_are_read_inside_functions_and_from_relative_and_from_imports():
    source = ("import os\nfrom hwr.config import ModelConfig\nfrom . import charset\nfrom ..errors import X\n"
              "def f():\n    from hwr.model import crnn\n")
    known = {"hwr.data.charset", "hwr.model.crnn"}
    assert imported_modules(source, "hwr.data", known.__contains__) == {
        "os", "hwr.config", "hwr.data.charset", "hwr.errors", "hwr.model.crnn"}


def test_a_model_code_closure_follows_lazy_imports_and_refuses_an_unknown_root():
    from hwr.mlflow.code_paths import import_closure

    closure = import_closure(["hwr.mlflow.model_code"])
    # hwr.model.inference is imported only inside a method of the pyfunc, hwr.model by its module
    assert {"hwr", "hwr.model", "hwr.model.inference", "hwr.mlflow.pyfunc"} <= set(closure)
    assert not any(name.startswith(("hwr.training", "hwr.tuning", "hwr.prediction")) for name in closure)
    assert "set_model(HwrPredictionModel())" in closure["hwr.mlflow.model_code"]
    with pytest.raises(ModuleNotFoundError, match="hwr.nothing is not a module of the hwr package"):
        import_closure(["hwr.nothing"])
