"""A faster copy of a trained prediction model for prediction only: batch normalisations folded
into the convolutions before them, a fixed-width model's LSTMs unrolled (:func:`for_inference`)."""

from __future__ import annotations

import keras
from keras import layers

from hwr.model.crnn import true_width


class FoldedBatchNorm(layers.Layer):
    """Stands, in a copy made by :func:`for_inference`, where a batch normalisation was folded into
    the convolution before it: passes its input through."""

    def call(self, inputs, mask=None, training=None):
        return inputs


def for_inference(model: keras.Model, fold_norms: bool = True) -> keras.Model:
    """A copy of a prediction model that computes the same probabilities (to float rounding) in
    less time on a CPU, for prediction only (it is never trained or saved):

    - each batch normalisation that follows a convolution (``bn1`` after ``conv1``, ...,
      ``seqbn1`` after ``seqconv1``; or its max-pool, ``conv_block=pool_first``, where its scale is
      positive in every channel: :func:`folded_into`) is folded into it: at inference a batch
      normalisation is a fixed per-channel scale ``gamma / sqrt(moving_variance + epsilon)`` and
      shift, so the convolution's kernel is multiplied by the scale and its bias becomes
      ``(bias - moving_mean) * scale + beta`` (Ioffe & Szegedy 2015's inference transform, applied
      to the weights once instead of to every image). The forward pass of the default word model at
      batch 64 went from 1.00-1.10 to 0.74-0.88 ms per image in interleaved rounds on a slow host
      (``bench/inference_copy.py``, which compares with ``fold_norms=False``);
    - a fixed-width model's LSTMs are unrolled (a free-width model's cannot be: an unrolled loop
      needs its step count). Keras runs a recurrent layer as a loop over time steps, whose control
      costs more on a CPU than the small matrix products of one step; unrolled, the 40 steps of the
      default word model are one flat graph: the forward pass at batch 64 went from 0.52 to 0.48 ms
      per image (``bench/forward_cost.py``). Training stays rolled: unrolled, a training step was
      5-10 % cheaper but each model built took 5 s more to trace (docs/performance.md).

    ``fold_norms=False`` leaves the batch normalisations as they are (the unrolling alone).
    """
    convs = {}  # name of a convolution -> the batch normalisation folded into it
    for layer in model.layers if fold_norms else ():
        conv = folded_into(layer) if isinstance(layer, layers.BatchNormalization) else None
        if conv is not None:
            convs[conv.name] = layer
    norms = {norm.name for norm in convs.values()}
    unroll = not true_width(model)

    def clone(layer):
        if layer.name in norms:
            return FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        if unroll and isinstance(layer, layers.Bidirectional):
            for part in ("layer", "backward_layer"):
                if part in config:
                    config[part]["config"]["unroll"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if layer.weights:
            original = model.get_layer(layer.name)
            layer.set_weights(fold(original, convs[layer.name]) if layer.name in convs else original.get_weights())
    return copy


def folded_into(norm: layers.BatchNormalization):
    """The convolution (1-D or 2-D) that the batch normalisation ``norm`` can be folded into, or
    ``None``: the convolution whose output ``norm`` normalises, or whose max-pooled output it
    normalises where ``norm``'s inference scale is positive in every channel (a max-pool commutes
    with a per-channel ``scale * x + shift`` only when ``scale > 0``: ``conv_block=pool_first``)."""
    import numpy as np

    source = producer(norm)
    if isinstance(source, layers.MaxPooling2D) and np.all(inference_scale(norm) > 0):
        source = producer(source)
    return source if isinstance(source, (layers.Conv1D, layers.Conv2D)) else None


def producer(layer: layers.Layer):
    """The layer whose output ``layer`` (of one input, called once) takes."""
    return layer.input._keras_history.operation


def inference_scale(norm: layers.BatchNormalization):
    """``(channels,)`` float32: the factor ``gamma / sqrt(moving_variance + epsilon)`` by which ``norm``
    multiplies its input at inference."""
    import numpy as np

    return (np.asarray(norm.gamma) if norm.scale else 1.0) / np.sqrt(np.asarray(norm.moving_variance) + norm.epsilon)


def fold(conv, norm) -> list:
    """``[kernel, bias]`` of ``conv`` with the inference transform of the batch normalisation
    ``norm`` that follows it folded in (see :func:`for_inference`); float32 arrays of the
    convolution's kernel shape and ``(filters,)``."""
    import numpy as np

    kernel = np.asarray(conv.kernel)
    bias = np.asarray(conv.bias) if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
    scale = inference_scale(norm)
    shift = np.asarray(norm.beta) if norm.center else 0.0
    bias = (bias - np.asarray(norm.moving_mean)) * scale + shift
    return [(kernel * scale).astype(np.float32), bias.astype(np.float32)]
