"""The ``tune`` search space: the default ranges, the YAML/JSON file format, validation, and the
mapping to a Hyperopt space and back to flat ``TrainConfig`` parameters.

A search-space file is a mapping; every key is optional::

    base: default          # start from DEFAULT_SPACE (default) or from "none" (tune only what is listed)
    params:
      lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}   # low/high are the values, not their logs
      batch_size: [16, 32]                                  # a list is a choice
      dense_units: {type: quniform, low: 64, high: 256, q: 32}
      dropout: {type: uniform, low: 0.0, high: 0.4}
      conv_filters: {type: choice, values: ["32,64", "32,64,128"]}
      kernel_size: 3                                        # a scalar fixes the parameter

Parameters not in the space keep the value of the ``tune`` run's own (train) parameters. A value
a parameter may take is checked by that parameter's declaration in :class:`~hwr.config.TrainConfig`
(the rule ``train`` applies too). Knows nothing of MLflow or TensorFlow: a bad file is a
:class:`~hwr.errors.ConfigError` before any trial starts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from hwr.config import TrainConfig
from hwr.config.params import check_value as check_declared
from hwr.config.params import int_list_text, parse_int_list
from hwr.errors import ConfigError

TUNABLE = ("lr", "batch_size", "kernel_size", "conv_filters", "conv_block", "height_pool", "dense_units", "dropout",
           "sequence", "lstm1_units", "lstm2_units", "aux_ctc", "bn_momentum", "weight_decay", "clipnorm", "activation",
           "img_height", "img_width", "augment", "patience")
DECLARED = {name: TrainConfig.declarations()[name] for name in TUNABLE}
INT_PARAMS = tuple(n for n, (_, d) in DECLARED.items() if isinstance(d, int) and not isinstance(d, bool))
FLOAT_PARAMS = tuple(n for n, (_, d) in DECLARED.items() if isinstance(d, float))
TEXT_PARAMS = tuple(n for n in TUNABLE if n not in INT_PARAMS + FLOAT_PARAMS)
TYPES = {"choice": ("values",), "uniform": ("low", "high"), "quniform": ("low", "high", "q"),
         "loguniform": ("low", "high"), "qloguniform": ("low", "high", "q")}

DEFAULT_SPACE: dict[str, object] = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    "batch_size": {"type": "choice", "values": [16, 32, 64]},
    "kernel_size": {"type": "choice", "values": [3, 5]},
    "conv_filters": {"type": "choice", "values": ["32,64", "32,64,128", "16,32,64"]},
    "dense_units": {"type": "quniform", "low": 64, "high": 256, "q": 32},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "lstm1_units": {"type": "choice", "values": [64, 128, 256]},
    "lstm2_units": {"type": "choice", "values": [32, 64, 128]},
    "activation": {"type": "choice", "values": ["relu", "elu", "gelu", "swish"]},
}


def _fail(where: str, name: str, message: str):
    raise ConfigError(f"{where}: parameter {name!r}: {message}")


def check_value(name: str, value, where: str = "search space") -> None:
    """Check one value a parameter may take on its own, by the parameter's declaration
    (combinations are checked per trial).

    Raises:
        ConfigError: naming ``where`` and the parameter.
    """
    decl, default = DECLARED[name]
    try:
        check_declared(name, value, decl, default)
    except ConfigError as exc:
        _fail(where, name, str(exc))


def _check_range(name: str, spec: dict, where: str) -> None:
    for key in ("low", "high", "q"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], (int, float))):
            _fail(where, name, f"{key}={spec[key]!r} is not a number")
    if name in TEXT_PARAMS:
        _fail(where, name, f"type {spec['type']!r} needs a numeric parameter; use a choice")
    if spec["low"] >= spec["high"]:
        _fail(where, name, f"low={spec['low']} must be below high={spec['high']}")
    if spec["type"].endswith("loguniform") and spec["low"] <= 0:
        _fail(where, name, f"low={spec['low']} must be positive for {spec['type']}")
    if name in INT_PARAMS and not spec["type"].startswith("q"):
        _fail(where, name, f"is an integer: use quniform, qloguniform or choice, not {spec['type']}")
    q = spec.get("q")
    if q is not None and q <= 0:
        _fail(where, name, f"q={q} must be positive")
    lowest = round(spec["low"] / q) * q if q else spec["low"]
    highest = round(spec["high"] / q) * q if q else spec["high"]
    for value in (lowest, highest):
        check_value(name, int(value) if name in INT_PARAMS else value, where)


def normalise_spec(name: str, spec, where: str) -> dict:
    """One parameter's spec in the canonical ``{type: ..., ...}`` form, validated.

    Raises:
        ConfigError: unknown parameter, unknown type or key, missing bound, bad range or value.
    """
    if name not in TUNABLE:
        _fail(where, name, f"unknown parameter; tunable parameters are {', '.join(TUNABLE)}")
    if isinstance(spec, list):
        spec = {"type": "choice", "values": spec}
    elif not isinstance(spec, dict):
        spec = {"type": "fixed", "value": spec}
    spec = dict(spec)
    kind = spec.get("type")
    if kind == "fixed":
        check_value(name, spec.get("value"), where)
        return spec
    if kind not in TYPES:
        _fail(where, name, f"type {kind!r} is not one of {', '.join(TYPES)}")
    expected = set(TYPES[kind]) | {"type"}
    if set(spec) - expected:
        _fail(where, name, f"unexpected key(s) {sorted(set(spec) - expected)} for type {kind}")
    if missing := [k for k in TYPES[kind] if k not in spec]:
        _fail(where, name, f"type {kind} needs {', '.join(missing)}")
    if kind == "choice":
        if not isinstance(spec["values"], list) or not spec["values"]:
            _fail(where, name, "values must be a non-empty list")
        for value in spec["values"]:
            check_value(name, value, where)
    else:
        _check_range(name, spec, where)
    return spec


def load_space(path: str | Path | None) -> dict[str, dict]:
    """The validated search space (canonical specs by parameter) of a YAML/JSON file, or the
    default space for an empty path.

    Raises:
        ConfigError: missing or unparsable file, bad structure, unknown parameter, bad range.
    """
    if not path:
        return {name: normalise_spec(name, spec, "default space") for name, spec in DEFAULT_SPACE.items()}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search_space={str(path)!r}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError
        raise ConfigError(f"{path}: cannot parse the search space: {exc}") from exc
    return space_from_doc(doc if doc is not None else {}, str(path))


def space_from_doc(doc, where: str) -> dict[str, dict]:
    """Validate a parsed search-space document (see the module docstring)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with 'base' and 'params'")
    if unknown := set(doc) - {"base", "params"}:
        raise ConfigError(f"{where}: unknown top-level key(s) {sorted(unknown)}; expected 'base' and 'params'")
    base = doc.get("base", "default")
    if base not in ("default", "none"):
        raise ConfigError(f"{where}: base={base!r}: expected 'default' or 'none'")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: 'params' must be a mapping of parameter -> range")
    space = load_space(None) if base == "default" else {}
    space.update({name: normalise_spec(name, spec, where) for name, spec in params.items()})
    if not any(spec["type"] != "fixed" for spec in space.values()):
        raise ConfigError(f"{where}: nothing to tune: every parameter is fixed")
    return space


def hyperopt_space(space: dict[str, dict]) -> dict:
    """The Hyperopt expression of a validated space (labels are the parameter names)."""
    from hyperopt import hp

    out = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "fixed":
            out[name] = spec["value"]
        elif kind == "choice":
            out[name] = hp.choice(name, spec["values"])
        elif kind == "uniform":
            out[name] = hp.uniform(name, spec["low"], spec["high"])
        elif kind == "quniform":
            out[name] = hp.quniform(name, spec["low"], spec["high"], spec["q"])
        elif kind == "loguniform":
            out[name] = hp.loguniform(name, math.log(spec["low"]), math.log(spec["high"]))
        else:
            out[name] = hp.qloguniform(name, math.log(spec["low"]), math.log(spec["high"]), spec["q"])
    return out


def to_params(sample: dict) -> dict[str, object]:
    """A Hyperopt sample as flat ``TrainConfig`` parameters (integers as ``int``, ``lr`` as float)."""
    out = {}
    for name, value in sample.items():
        if name in INT_PARAMS:
            out[name] = int(round(float(value)))
        elif name in FLOAT_PARAMS:
            out[name] = float(value)
        elif name == "conv_filters":
            out[name] = int_list_text(parse_int_list(value, name))
        else:
            out[name] = value
    return out
