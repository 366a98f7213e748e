"""The CRNN (convolutions -> dense -> sequence layers, by default 2 bidirectional LSTMs -> softmax)
and its CTC loss layer.

The softmax sees the sequence layers' output concatenated with the dense features (a shortcut
around the LSTMs) so that training leaves CTC's initial all-blank plateau sooner.

Architecture after Shi, Bai & Yao, "An End-to-End Trainable Neural Network for Image-based
Sequence Recognition" (CRNN, TPAMI 2017), sized like the keras.io "Handwriting recognition"
example, with batch normalisation and more output frames for long words.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from hwr.config import ModelConfig
from hwr.config.training import WIDTH_POOLED_BLOCKS
from hwr.model.normalization import FusedBatchNormalization

OUTPUT_LAYER = "output"
AUX_OUTPUT_LAYER, AUX_LOSS_LAYER = "aux_output", "aux_ctc_loss"  # the CTC shortcut (aux_ctc > 0), training only
IMAGE_INPUT = "image"
LABEL_INPUT = "label"
SEQUENCE_CONVS, SEQUENCE_KERNEL = 2, 5  # sequence=conv: residual 1-D convolution blocks, frames per kernel
INPUT_WIDTH = "input_width"


@keras.saving.register_keras_serializable(package="hwr")
class CTCLossLayer(layers.Layer):
    """Adds the CTC loss of ``(labels, probs)`` to the model and passes ``probs`` through.

    ``labels``: ``(batch, max_len)`` int32, ids 1..V, 0-padded (0 is also the blank).
    ``probs``: ``(batch, time, V + 1)`` softmax output. Every image yields all ``time`` frames.

    The loss is TensorFlow's CTC with *sparse* labels (``tf.nn.ctc_loss`` given a
    ``SparseTensor``), whose kernel grows linearly with the label length; ``keras.ops.ctc_loss``
    (dense labels) computes the same value about 15x slower here (28 ms against 1.9 ms for a batch
    of 32 DHSD words), which halved the training throughput of the default model. The value is
    Keras' to within float rounding (``tests/test_crnn.py``).
    """

    def call(self, labels, probs):
        self.add_loss(ctc_loss(labels, probs))
        return probs


@keras.saving.register_keras_serializable(package="hwr")
class AuxiliaryCTC(layers.Layer):
    """Adds ``weight`` times the CTC loss of ``(labels, aux_probs)`` to the model and passes
    ``probs`` through: the CTC shortcut of Retsinas et al., "Best practices for a handwritten text
    recognition system" (DAS 2022), a second softmax read straight off the convolutional features
    (a 1-D convolution over the frames, kernel 3) and trained beside the main head, so that the
    convolutions get a short gradient path from the start; prediction never uses it. They weight it
    0.1. Shapes as :class:`CTCLossLayer`'s; ``aux_probs`` has the same frames as ``probs``."""

    def __init__(self, weight: float, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, labels, aux_probs, probs):
        self.add_loss(self.weight * ctc_loss(labels, aux_probs))
        return probs

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def ctc_loss(labels, probs):
    """The batch's mean CTC loss (scalar float32) of ``labels`` ``(batch, max_len)`` int32 (ids 1..V,
    0-padded) under ``probs`` ``(batch, time, V + 1)``: see :class:`CTCLossLayer`."""
    import tensorflow as tf

    labels = tf.cast(labels, tf.int32)
    batch, frames = tf.shape(probs)[0], tf.shape(probs)[1]
    log_probs = ops.log(probs + 1e-7)
    # the sparse kernel refuses an empty label (a val label whose characters the charset lacks):
    # it gets a stand-in label here, and its true loss, every frame blank, below
    empty = tf.equal(tf.reduce_sum(labels, axis=-1), 0)
    stand_in = tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(labels)[1], dtype=tf.int32)
    sparse = tf.sparse.from_dense(tf.where(empty[:, None], stand_in, labels))
    loss = tf.nn.ctc_loss(sparse, log_probs, None, tf.fill([batch], frames), logits_time_major=False,
                          blank_index=0)
    all_blank = -tf.reduce_sum(tf.nn.log_softmax(log_probs)[:, :, 0], axis=-1)
    return ops.mean(tf.where(empty, all_blank, loss))


@keras.saving.register_keras_serializable(package="hwr")
class InputWidth(layers.Layer):
    """Passes images through unchanged and records, in the saved model, the widest image
    (``max_width``, pixels) of a model whose input width is free (``shape=true``): wider images
    are squeezed to it by the preprocessing (:func:`hwr.data.images.fit_to_height`)."""

    def __init__(self, max_width: int, **kwargs):
        super().__init__(**kwargs)
        self.max_width = int(max_width)

    def call(self, images):
        return images

    def get_config(self):
        return {**super().get_config(), "max_width": self.max_width}


def build_crnn(cfg: ModelConfig, num_classes: int) -> keras.Model:
    """The full (trainable) model.

    Inputs: ``image`` ``(batch, img_height, img_width, 1)`` float32 in [0, 1] (with
    ``shape=true``: ``(batch, img_height, any width, 1)``, at most ``img_width`` wide);
    ``label`` ``(batch, max_len)`` int32. Output: ``(batch, cfg.time_steps, num_classes)`` softmax
    probabilities (class 0 = blank; frames: :func:`hwr.config.training.ctc_frames`). The CTC loss is added by :class:`CTCLossLayer`.
    """
    image = keras.Input((cfg.img_height, None if cfg.true_width else cfg.img_width, 1), name=IMAGE_INPUT)
    label = keras.Input((None,), dtype="int32", name=LABEL_INPUT)
    x = InputWidth(cfg.img_width, name=INPUT_WIDTH)(image) if cfg.true_width else image
    for i, filters in enumerate(cfg.conv_filters, start=1):
        x = conv_block(x, i, filters, cfg)
    x = column_features(x, cfg)
    x = layers.Dense(cfg.dense_units, activation=cfg.activation, name="dense1")(x)
    x = features = layers.Dropout(cfg.dropout, name="dropout1")(x)
    x = sequence_layers(x, cfg)
    # Shortcut from the per-column features to the softmax: gradients reach the convolutions
    # without crossing the sequence layers, which halves the steps CTC needs to leave its all-blank
    # plateau (64 DHSD words memorised in ~50 instead of ~100 epochs, see README "The model").
    x = layers.Concatenate(name="skip")([x, features])
    probs = layers.Dense(num_classes, activation="softmax", name=OUTPUT_LAYER)(x)
    probs = CTCLossLayer(name="ctc_loss")(label, probs)
    if cfg.aux_ctc:
        aux = layers.Conv1D(num_classes, 3, padding="same", activation="softmax", name=AUX_OUTPUT_LAYER)(features)
        probs = AuxiliaryCTC(cfg.aux_ctc, name=AUX_LOSS_LAYER)(label, aux, probs)
    return keras.Model({IMAGE_INPUT: image, LABEL_INPUT: label}, probs, name="crnn_ctc")


def conv_block(x, i: int, filters: int, cfg: ModelConfig):
    """Convolution block ``i`` (from 1), ``(batch, height, width, channels)`` in and ``(batch, height / 2,
    width / 2, filters)`` out (the width halved only by the first :data:`WIDTH_POOLED_BLOCKS` blocks),
    as ``cfg.conv_block`` names it: ``plain``: a convolution, batch norm, activation and max-pool
    (layers ``convI``, ``bnI``, ``actI``, ``poolI``); ``pool_first``: the same layers with the max-pool
    straight after the convolution, so that the batch norm and the activation see a quarter of the
    values (the maximum commutes with the activation, and with the batch norm's inference transform
    wherever its scale is positive); ``residual``: the basic block of He et al., "Deep Residual
    Learning for Image Recognition" (CVPR 2016): that convolution, batch norm and activation, a second
    convolution and batch norm (``resconvI``, ``resbnI``), added to the input brought to ``filters``
    channels by a 1x1 convolution and batch norm (``shortconvI``, ``shortbnI``), then the activation
    (``resactI``) and the max-pool. Every convolution ``kernel_size`` square (but the 1x1), no bias;
    each batch norm follows its convolution (or its convolution's max-pool), so that
    :func:`hwr.model.folding.for_inference` folds it in."""
    pool = layers.MaxPooling2D((2, 2) if i <= WIDTH_POOLED_BLOCKS else (2, 1), name=f"pool{i}")
    y = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=False, name=f"conv{i}")(x)
    if cfg.conv_block == "pool_first":
        y = pool(y)
    y = FusedBatchNormalization(momentum=cfg.bn_momentum, name=f"bn{i}")(y)
    y = layers.Activation(cfg.activation, name=f"act{i}")(y)
    if cfg.conv_block == "pool_first":
        return y
    if cfg.conv_block == "plain":
        return pool(y)
    y = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=False, name=f"resconv{i}")(y)
    y = FusedBatchNormalization(momentum=cfg.bn_momentum, name=f"resbn{i}")(y)
    shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"shortconv{i}")(x)
    shortcut = FusedBatchNormalization(momentum=cfg.bn_momentum, name=f"shortbn{i}")(shortcut)
    return pool(layers.Activation(cfg.activation, name=f"resact{i}")(layers.Add(name=f"resadd{i}")([y, shortcut])))


def column_features(x, cfg: ModelConfig):
    """The convolutions' ``(batch, height, width, channels)`` map as one feature vector per column,
    ``(batch, width, features)``, as ``cfg.height_pool`` names it: ``flatten``: the column's
    height x channels values (layer ``flatten_columns``); ``max``: each channel's largest value
    over the height (the column max-pooling of Retsinas et al., "Best practices for a handwritten
    text recognition system", DAS 2022; layer ``height_pool``), ``height`` times fewer features."""
    if cfg.height_pool == "max":
        x = layers.MaxPooling2D((x.shape[1], 1), name="height_pool")(x)
    _, h, w, c = x.shape
    x = layers.Permute((2, 1, 3), name="to_sequence")(x)
    return layers.Reshape((-1 if w is None else w, h * c), name="flatten_columns")(x)


def sequence_layers(x, cfg: ModelConfig):
    """The layers that give each frame its context, ``(batch, frames, dense_units)`` in and
    ``(batch, frames, channels)`` out, as ``cfg.sequence`` names them: ``bilstm2`` (layers ``bilstm1``,
    ``dropout2``, ``bilstm2``), ``bilstm1`` (``bilstm1``), or ``conv``: :data:`SEQUENCE_CONVS` residual
    blocks of a 1-D convolution over the frames (kernel :data:`SEQUENCE_KERNEL`, ``dense_units``
    channels), batch norm, activation and dropout (layers ``seqconv1``, ``seqbn1``, ...). A
    recurrent layer runs as a loop over the frames, which on a CPU costs more than its arithmetic;
    the convolutions see :data:`SEQUENCE_KERNEL` frames each (about 2 characters of a word on each
    side after two blocks) instead of the whole line, and train about twice as fast here
    (docs/performance.md)."""
    if cfg.sequence == "conv":
        for i in range(1, SEQUENCE_CONVS + 1):
            y = layers.Conv1D(cfg.dense_units, SEQUENCE_KERNEL, padding="same", use_bias=False,
                              name=f"seqconv{i}")(x)
            y = FusedBatchNormalization(momentum=cfg.bn_momentum, name=f"seqbn{i}")(y)
            y = layers.Activation(cfg.activation, name=f"seqact{i}")(y)
            y = layers.Dropout(cfg.dropout, name=f"seqdropout{i}")(y)
            x = layers.Add(name=f"seqadd{i}")([x, y])
        return x
    x = layers.Bidirectional(layers.LSTM(cfg.lstm1_units, return_sequences=True), name="bilstm1")(x)
    if cfg.sequence == "bilstm1":
        return x
    x = layers.Dropout(cfg.dropout, name="dropout2")(x)
    return layers.Bidirectional(layers.LSTM(cfg.lstm2_units, return_sequences=True), name="bilstm2")(x)


def compile_model(model: keras.Model, lr: float, weight_decay: float = 0.0, clipnorm: float = 0.0) -> keras.Model:
    """Compile with Adam (``weight_decay`` > 0: AdamW, Loshchilov & Hutter 2019, decoupled decay per
    step times the learning rate; ``clipnorm`` > 0: every step's gradients scaled down together to
    at most that global L2 norm); the loss comes from :class:`CTCLossLayer`."""
    clip = {"global_clipnorm": clipnorm} if clipnorm else {}
    optimizer = (keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay, **clip) if weight_decay
                 else keras.optimizers.Adam(learning_rate=lr, **clip))
    model.compile(optimizer=optimizer)
    return model


def prediction_model(full: keras.Model) -> keras.Model:
    """The image -> probabilities part of a full model (shares its weights; no label input)."""
    return keras.Model(full.get_layer(IMAGE_INPUT).output, full.get_layer(OUTPUT_LAYER).output,
                       name="crnn")


def input_geometry(full: keras.Model) -> tuple[int, int]:
    """``(img_height, img_width)`` of a full or prediction model's image input, in pixels (for a
    model of free input width, ``img_width`` is its widest image, :class:`InputWidth`)."""
    _, height, width, _ = full.get_layer(IMAGE_INPUT).output.shape
    return int(height), int(width) if width is not None else full.get_layer(INPUT_WIDTH).max_width


def true_width(model: keras.Model) -> bool:
    """Whether a full or prediction model takes images of any width (``shape=true``)."""
    return model.get_layer(IMAGE_INPUT).output.shape[2] is None


def width_stride(model: keras.Model) -> int:
    """Input pixels of width per CTC frame of a full or prediction model: the product of its
    pooling layers' widths (:func:`hwr.config.training.width_stride` for the built CRNN)."""
    pools = [layer.pool_size[1] for layer in model.layers if isinstance(layer, layers.MaxPooling2D)]
    return math.prod(pools)
