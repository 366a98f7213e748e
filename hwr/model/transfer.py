"""Model surgery for transfer learning: read a full model's architecture back, rebuild it with a
wider output layer (more characters) keeping every learned weight, and freeze/unfreeze layers.

Knows nothing of MLflow or data files; :mod:`hwr.training.finetune` loads the model and calls these.
"""

from __future__ import annotations

import keras
import numpy as np

from hwr.config import ModelConfig
from hwr.errors import ConfigError
from hwr.model.crnn import AUX_LOSS_LAYER, AUX_OUTPUT_LAYER, OUTPUT_LAYER, build_crnn, input_geometry, true_width

AUTO = "auto"


def model_config_of(full: keras.Model) -> ModelConfig:
    """The :class:`ModelConfig` a full CRNN (as built by :func:`hwr.model.crnn.build_crnn`) was built with.

    Raises:
        ConfigError: the model lacks a layer of the CRNN (not a model of this project).
    """
    try:
        height, width = input_geometry(full)
        names = {layer.name for layer in full.layers}
        convs = [full.get_layer(f"conv{i}") for i in range(1, len(full.layers)) if f"conv{i}" in names]
        act = full.get_layer("act1").get_config()["activation"]
        sequence = "bilstm2" if "bilstm2" in names else "bilstm1" if "bilstm1" in names else "conv"
        return ModelConfig(
            shape="true" if true_width(full) else "fixed", img_height=height, img_width=width,
            conv_filters=tuple(int(c.filters) for c in convs),
            kernel_size=int(convs[0].kernel_size[0]),
            conv_block=conv_block_of(full, names),
            height_pool="max" if "height_pool" in names else "flatten",
            activation=act if isinstance(act, str) else str(act.get("config", {}).get("name", act)),
            dense_units=int(full.get_layer("dense1").units),
            dropout=float(full.get_layer("dropout1").rate),
            bn_momentum=float(full.get_layer("bn1").momentum),
            sequence=sequence,
            aux_ctc=float(full.get_layer(AUX_LOSS_LAYER).weight) if AUX_LOSS_LAYER in names else 0.0,
            **{f"lstm{i}_units": int(full.get_layer(f"bilstm{i}").forward_layer.units) for i in (1, 2)
               if f"bilstm{i}" in names},
        )
    except (ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"the base model is not a CRNN of this project ({exc})") from exc


def conv_block_of(full: keras.Model, names: set[str]) -> str:
    """The ``conv_block`` a full CRNN was built with, from its layers (``names``: theirs)."""
    if "resconv1" in names:
        return "residual"
    order = [layer.name for layer in full.layers]
    return "pool_first" if order.index("pool1") < order.index("bn1") else "plain"


OUTPUTS = (OUTPUT_LAYER, AUX_OUTPUT_LAYER)  # the layers with one output per class


def output_size(full: keras.Model) -> int:
    """Number of classes (characters + blank) of the model's output layer."""
    return int(full.get_layer(OUTPUT_LAYER).units)


def widen_output(weights: list[np.ndarray], fresh: list[np.ndarray]) -> list[np.ndarray]:
    """Output-layer weights for more classes: the old ``(in, old)`` kernel columns and ``(old,)``
    bias entries are kept at their indices (blank 0, characters 1..V); the new classes take the
    columns of ``fresh`` (the rebuilt layer's initial ``(in, new)`` kernel and ``(new,)`` bias)."""
    out = []
    for old, new in zip(weights, fresh):
        new = np.array(new, copy=True)
        new[..., :old.shape[-1]] = old
        out.append(new)
    return out


def rebuild_with_classes(base: keras.Model, num_classes: int, seed: int = 0) -> keras.Model:
    """A new full model of the base's architecture and geometry with ``num_classes`` output
    classes and every weight of ``base`` copied (the output layer, and the CTC shortcut's where the base
    has one, widened by :func:`widen_output`).

    Raises:
        ConfigError: ``num_classes`` is smaller than the base's (characters are never removed).
    """
    old_classes = output_size(base)
    if num_classes < old_classes:
        raise ConfigError(f"cannot shrink the output layer from {old_classes} to {num_classes} classes")
    keras.utils.set_random_seed(seed)
    model = build_crnn(model_config_of(base), num_classes)
    for layer in model.layers:
        if not layer.weights:
            continue
        old = base.get_layer(layer.name).get_weights()
        layer.set_weights(widen_output(old, layer.get_weights()) if layer.name in OUTPUTS else old)
    return model


def trainable_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers that hold weights, in model order (the valid ``freeze_until`` values)."""
    return [layer.name for layer in model.layers if layer.weights]


def freeze_until(model: keras.Model, name: str = AUTO) -> list[str]:
    """Freeze layer ``name`` and every layer before it (``auto``: the last layer with weights before
    the output layer, i.e. the last of the sequence layers: ``bilstm2`` in the default model; the
    CTC shortcut's ``aux_output``, where the model has one, is not counted).

    Frozen batch-normalisation layers also stop updating their moving statistics (Keras 3).
    The model must be compiled again afterwards. Returns the names of the frozen layers with weights.

    Raises:
        ConfigError: unknown layer name (the message lists the valid ones), or nothing left to train.
    """
    names = [layer.name for layer in model.layers]
    valid = trainable_layer_names(model)
    heads = [n for n in valid if n != AUX_OUTPUT_LAYER]
    target = heads[heads.index(OUTPUT_LAYER) - 1] if name == AUTO else name
    if target not in valid:
        raise ConfigError(f"freeze_until={name!r}: no such layer with weights; expected auto or one of "
                          f"{', '.join(valid)}")
    stop = names.index(target)
    for i, layer in enumerate(model.layers):
        layer.trainable = i > stop
    if not model.trainable_weights:
        raise ConfigError(f"freeze_until={name!r} freezes every layer: nothing left to train in phase 1")
    return [n for n in valid if names.index(n) <= stop]


def unfreeze(model: keras.Model) -> None:
    """Make every layer trainable again (compile the model again afterwards)."""
    for layer in model.layers:
        layer.trainable = True


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """A copy of each layer's weights by layer name (independent of trainable flags)."""
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def set_layer_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Restore weights saved by :func:`layer_weights`."""
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
