"""The CRNN's geometry: the CTC frame count for 1-4 conv blocks is what the configuration (and
every text stating it) says, and labels longer than it are bad input."""

import pytest

from hwr.config import ModelConfig
from hwr.config.training import ctc_frames, frames_formula
from hwr.data.charset import Charset
from hwr.model.crnn import build_crnn, prediction_model


@pytest.mark.parametrize("blocks, frames", [(1, 32), (2, 16), (3, 16), (4, 16)])
def test_frame_count_for_one_to_four_conv_blocks(blocks, frames):
    cfg = ModelConfig(img_height=16, img_width=64, conv_filters=(4,) * blocks, dense_units=8,
                      lstm1_units=4, lstm2_units=4).validate()
    output = prediction_model(build_crnn(cfg, num_classes=5)).output
    assert output.shape[1] == cfg.time_steps == ctc_frames(64, blocks) == frames
    assert cfg.frames_formula == frames_formula(blocks) == f"img_width / {64 // frames}"


def test_the_help_text_states_the_computed_frame_count():
    decl, _ = ModelConfig.declarations()["img_width"]
    assert f"emits {frames_formula(len(ModelConfig().conv_filters))} CTC frames" in decl.help
    assert "img_width / 2 with one conv block" in decl.help


def test_a_label_too_long_for_a_one_block_model_names_its_formula(tmp_path):
    import pandas as pd

    from hwr.data.labels import BadInputLog, check_label_lengths

    cfg = ModelConfig(img_height=16, img_width=16, conv_filters=(8,))
    frame = pd.DataFrame({"row": [2, 3], "image": ["a.png", "b.png"], "text": ["abcdefgh", "abcdefghi"],
                          "split": ["train", "train"]})
    bad = BadInputLog("skip", tmp_path / "labels.csv")
    kept = check_label_lengths(frame, Charset.from_texts(frame.text), cfg, bad)
    assert kept.text.tolist() == ["abcdefgh"]
    assert "needs 9 CTC frames but the model emits 8 (img_width / 2)" in bad.rows[0].reason
    assert bad.rows[0].file == "b.png" and bad.rows[0].row == 3


def test_ctc_loss_with_sparse_labels_equals_keras_dense_ctc():
    """The loss layer's sparse-label CTC gives Keras' dense-label value, for full, short and empty
    labels (an empty one: a val label of characters the charset lacks)."""
    import numpy as np
    from keras import ops

    from hwr.model.crnn import CTCLossLayer

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 12, 6)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([[1, 2, 3, 4, 5], [5, 5, 0, 0, 0], [2, 0, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    layer = CTCLossLayer()
    layer(labels, probs)
    lengths = (labels != 0).sum(-1).astype("int32")
    dense = ops.ctc_loss(labels, ops.log(probs + 1e-7), lengths, np.full(4, 12, "int32"), mask_index=0)
    assert float(layer.losses[0]) == pytest.approx(float(np.mean(dense)), rel=1e-4)


def randomise_batch_norms(model, seed: int = 0) -> None:
    """Moving statistics, scales and shifts far from a fresh layer's 0 / 1, so folding them shows."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])


@pytest.mark.parametrize("sequence, shape, conv_block", [("bilstm2", "fixed", "plain"), ("bilstm2", "true", "plain"),
                                                       ("conv", "fixed", "plain"), ("bilstm2", "fixed", "residual"),
                                                       ("bilstm2", "true", "residual"),
                                                       ("bilstm2", "fixed", "pool_first"),
                                                       ("bilstm2", "true", "pool_first")])
def test_the_inference_copy_gives_the_same_probabilities_with_batch_norms_folded(sequence, shape, conv_block):
    """Prediction runs a copy with every batch normalisation folded into its convolution (the
    residual blocks' three per block too, and, with positive scales, across ``pool_first``'s max-pool)
    and a fixed-width model's LSTMs unrolled (faster on CPU);
    the probabilities must not move. A free-width model's LSTMs stay rolled (an unrolled loop needs
    its step count)."""
    import keras
    import numpy as np

    from hwr.model.folding import for_inference

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(shape=shape, img_height=16, img_width=32, conv_filters=(4, 8), conv_block=conv_block,
                      dense_units=8, lstm1_units=4, lstm2_units=4, sequence=sequence)
    model = prediction_model(build_crnn(cfg, num_classes=5))
    randomise_batch_norms(model)
    fast = for_inference(model)
    assert not [layer for layer in fast.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]) == \
        {"plain": 2, "pool_first": 2, "residual": 6}[conv_block] + {"bilstm2": 0, "conv": 2}[sequence]
    recurrent = [layer for layer in fast.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(recurrent) == {"bilstm2": 2, "conv": 0}[sequence]
    assert all(l.forward_layer.unroll == l.backward_layer.unroll == (shape == "fixed") for l in recurrent)
    images = np.random.default_rng(0).random((3, 16, 32, 1), np.float32)
    np.testing.assert_allclose(fast(images, training=False), model(images, training=False), atol=1e-5)
    assert not np.allclose(model.get_layer("conv1").kernel, fast.get_layer("conv1").kernel)


@pytest.mark.parametrize("sequence, last", [("bilstm2", "bilstm2"), ("bilstm1", "bilstm1"), ("conv", "seqbn2")])
def test_each_sequence_choice_is_read_back_from_the_model_and_freezes_up_to_its_last_layer(sequence, last):
    """finetune rebuilds a base model from its layers and, by default, freezes everything up to the
    end of its sequence layers: both must follow the ``sequence`` the model was built with."""
    import keras

    from hwr.model import transfer

    units = {"bilstm2": dict(lstm1_units=4, lstm2_units=6), "bilstm1": dict(lstm1_units=4), "conv": {}}[sequence]
    cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), dense_units=8,
                      sequence=sequence, **units).validate()
    full = build_crnn(cfg, num_classes=5)
    assert transfer.model_config_of(full) == cfg
    frozen = transfer.freeze_until(full)
    assert frozen[-1] == last and full.get_layer("output").trainable
    recurrent = [layer for layer in full.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(recurrent) == {"bilstm2": 2, "bilstm1": 1, "conv": 0}[sequence]


def test_conv_sequence_layers_see_a_few_frames():
    """The conv sequence layers: each frame's output depends on the frames within the two kernels'
    reach (2 x 2 on each side) and on nothing farther."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(img_height=16, img_width=64, conv_filters=(4,), dense_units=8, sequence="conv").validate()
    model = prediction_model(build_crnn(cfg, num_classes=5))
    head = keras.Model(model.get_layer("dropout1").output, model.get_layer("seqadd2").output)
    frames = np.random.default_rng(0).random((1, cfg.time_steps, 8), np.float32)
    moved = frames.copy()
    moved[0, 10] += 1.0
    changed = np.abs(head(moved, training=False) - head(frames, training=False)).max(-1)[0] > 1e-6
    assert np.flatnonzero(changed).tolist() == list(range(6, 15))


def test_the_ctc_shortcut_adds_its_weighted_loss_in_training_and_is_gone_from_prediction():
    """``aux_ctc``: the full model's loss is the main head's CTC plus ``aux_ctc`` times the CTC of
    the shortcut's softmax (both hand-computed here with Keras' dense CTC); the prediction model,
    and so every transcription, holds no shortcut layer; finetune reads the weight back, keeps the
    shortcut's class weights when it widens the charset, and still freezes up to the LSTMs."""
    import keras
    import numpy as np
    from keras import ops

    from hwr.model import transfer
    from hwr.model.crnn import AUX_OUTPUT_LAYER

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), dense_units=8, lstm1_units=4,
                      lstm2_units=4, aux_ctc=0.25).validate()
    full = build_crnn(cfg, num_classes=5)
    images = np.random.default_rng(0).random((2, 16, 32, 1), np.float32)
    labels = np.array([[1, 2, 3], [4, 0, 0]], np.int32)
    full({"image": images, "label": labels}, training=False)
    taps = keras.Model(full.inputs, [full.get_layer("output").output, full.get_layer(AUX_OUTPUT_LAYER).output])
    main, aux = (np.asarray(t) for t in taps({"image": images, "label": labels}, training=False))

    def dense_ctc(probs):
        frames = np.full(2, probs.shape[1], "int32")
        return float(np.mean(ops.ctc_loss(labels, ops.log(probs + 1e-7), (labels != 0).sum(-1), frames, mask_index=0)))

    assert float(sum(full.losses)) == pytest.approx(dense_ctc(main) + 0.25 * dense_ctc(aux), rel=1e-4)
    assert AUX_OUTPUT_LAYER not in {layer.name for layer in prediction_model(full).layers}
    assert transfer.model_config_of(full) == cfg
    wide = transfer.rebuild_with_classes(full, 7)
    old, new = (m.get_layer(AUX_OUTPUT_LAYER).get_weights()[0] for m in (full, wide))
    np.testing.assert_array_equal(new[..., :5], old)
    assert transfer.freeze_until(full)[-1] == "bilstm2"


@pytest.mark.parametrize("weight_decay, clipnorm, optimizer", [(0.0, 0.0, "Adam"), (0.01, 0.0, "AdamW"),
                                                               (0.0, 5.0, "Adam"), (0.01, 5.0, "AdamW")])
def test_weight_decay_picks_adamw_and_clipnorm_bounds_the_global_gradient_norm(weight_decay, clipnorm, optimizer):
    """``weight_decay`` > 0 trains with AdamW at that decay, ``clipnorm`` > 0 clips the step's gradients
    to that global norm; 0 leaves Adam as it was."""
    from hwr.model.crnn import compile_model

    cfg = ModelConfig(img_height=16, img_width=32, conv_filters=(4,), dense_units=8, lstm1_units=4, lstm2_units=4)
    model = compile_model(build_crnn(cfg, num_classes=5), 1e-3, weight_decay, clipnorm)
    assert type(model.optimizer).__name__ == optimizer
    assert (model.optimizer.weight_decay or 0.0) == pytest.approx(weight_decay)
    assert model.optimizer.global_clipnorm == (clipnorm or None)


@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_bn_momentum_sets_how_far_a_training_step_moves_every_batch_norms_statistics(momentum):
    """``bn_momentum``: one training-mode pass moves each batch normalisation's moving mean from 0
    to ``(1 - bn_momentum) * mean`` of the batch it saw, and its moving variance from 1 to
    ``bn_momentum * 1 + (1 - bn_momentum) * variance`` of that batch (Keras' update), in the conv
    blocks and in the conv sequence layers; finetune reads the momentum back."""
    import keras
    import numpy as np

    from hwr.model import transfer

    cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), dense_units=8, dropout=0.0,
                      sequence="conv", bn_momentum=momentum).validate()
    full = build_crnn(cfg, num_classes=5)
    norms = {"bn1": "conv1", "bn2": "conv2", "seqbn1": "seqconv1", "seqbn2": "seqconv2"}
    model = prediction_model(full)
    taps = keras.Model(model.inputs, [model.get_layer(conv).output for conv in norms.values()] + model.outputs)
    *seen, _ = taps(np.random.default_rng(0).random((4, 16, 32, 1), np.float32), training=True)
    for norm, batch in zip(norms, seen):
        layer, axes = full.get_layer(norm), tuple(range(len(batch.shape) - 1))
        np.testing.assert_allclose(layer.moving_mean, (1 - momentum) * np.mean(batch, axes), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance, momentum + (1 - momentum) * np.var(batch, axes),
                                   rtol=1e-4, atol=1e-6)
    assert transfer.model_config_of(full) == cfg


def test_a_residual_block_adds_its_input_through_a_1x1_convolution():
    """``conv_block=residual``: with the second convolution's kernel zeroed its branch gives 0 (fresh
    batch norm, inference), so block 1 outputs ``relu(x * w / sqrt(1 + eps))`` per filter, ``w`` the
    1x1 shortcut's weights: the input reaches the block's output around the convolutions. With a
    plain block the same image gives something else. finetune reads the choice back."""
    import keras
    import numpy as np

    from hwr.model import transfer

    cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), conv_block="residual",
                      dense_units=8).validate()
    full = build_crnn(cfg, num_classes=5)
    assert transfer.model_config_of(full) == cfg
    model = prediction_model(full)
    weights = np.array([1.0, 2.0, -1.0, 0.5], np.float32)
    model.get_layer("resconv1").set_weights([np.zeros_like(model.get_layer("resconv1").kernel)])
    model.get_layer("shortconv1").set_weights([weights.reshape(1, 1, 1, 4)])
    block = keras.Model(model.inputs, model.get_layer("resact1").output)
    image = np.random.default_rng(0).random((1, 16, 32, 1), np.float32)
    eps = model.get_layer("shortbn1").epsilon
    expected = np.maximum(image * weights / np.sqrt(1 + eps), 0.0)
    np.testing.assert_allclose(block(image, training=False), expected, rtol=1e-5, atol=1e-6)
    plain = prediction_model(build_crnn(ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8),
                                                    dense_units=8).validate(), num_classes=5))
    assert not np.allclose(keras.Model(plain.inputs, plain.get_layer("act1").output)(image), expected, atol=1e-3)


def test_pool_first_normalises_the_pooled_map_and_a_negative_scale_stays_unfolded():
    """``conv_block=pool_first``: each block max-pools its convolution's output before the batch
    norm and the activation, so those see a quarter of the values (batch norm 1's batch statistics
    are those of the pooled map), and the block's output has the plain block's shape. A batch norm
    with a negative scale in some channel does not commute with the max-pool before it: the
    inference copy keeps that one and folds the rest, and the probabilities do not move. finetune
    reads the choice back."""
    import keras
    import numpy as np

    from hwr.model import transfer
    from hwr.model.folding import for_inference

    keras.utils.set_random_seed(0)
    cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), dense_units=8, dropout=0.0,
                      conv_block="pool_first", bn_momentum=0.0).validate()
    full = build_crnn(cfg, num_classes=5)
    assert transfer.model_config_of(full) == cfg
    model = prediction_model(full)
    plain = prediction_model(build_crnn(cfg.replace(conv_block="plain"), num_classes=5))
    assert model.get_layer("act2").output.shape == plain.get_layer("pool2").output.shape == (None, 4, 8, 8)
    images = np.random.default_rng(0).random((4, 16, 32, 1), np.float32)
    taps = keras.Model(model.inputs, [model.get_layer("conv1").output, model.get_layer("pool1").output]
                       + model.outputs)
    conv, pooled, _ = taps(images, training=True)  # training: bn1 takes pool1's batch statistics
    assert pooled.shape == (4, 8, 16, 4)
    np.testing.assert_allclose(pooled, np.max(np.reshape(conv, (4, 8, 2, 16, 2, 4)), axis=(2, 4)))
    np.testing.assert_allclose(full.get_layer("bn1").moving_mean, np.mean(pooled, (0, 1, 2)), rtol=1e-4, atol=1e-6)
    randomise_batch_norms(model)
    bn1 = model.get_layer("bn1")
    gamma, *rest = bn1.get_weights()
    bn1.set_weights([gamma * np.array([1.0, -1.0, 1.0, 1.0], np.float32), *rest])
    fast = for_inference(model)
    assert [layer.name for layer in fast.layers if isinstance(layer, keras.layers.BatchNormalization)] == ["bn1"]
    np.testing.assert_allclose(fast(images, training=False), model(images, training=False), atol=1e-5)


def test_height_pool_max_keeps_each_channels_largest_value_over_a_column():
    """``height_pool=max``: each frame's features are, per channel, the largest value of its column
    of the last pooling's output (``flatten`` keeps all height x channels of them), so the dense
    layer reads ``channels`` inputs instead of ``height x channels``; finetune reads it back."""
    import keras
    import numpy as np

    from hwr.model import transfer

    shapes = {}
    for pool in ("flatten", "max"):
        cfg = ModelConfig(shape="fixed", img_height=16, img_width=32, conv_filters=(4, 8), dense_units=8,
                          height_pool=pool).validate()
        full = build_crnn(cfg, num_classes=5)
        assert transfer.model_config_of(full) == cfg
        model = prediction_model(full)
        shapes[pool] = tuple(model.get_layer("dense1").kernel.shape)
    taps = keras.Model(model.inputs, [model.get_layer("pool2").output, model.get_layer("flatten_columns").output])
    pooled, columns = taps(np.random.default_rng(0).random((2, 16, 32, 1), np.float32), training=False)
    assert pooled.shape == (2, 4, 8, 8) and columns.shape == (2, 8, 8)
    np.testing.assert_allclose(columns, np.max(pooled, axis=1))
    assert shapes == {"flatten": (4 * 8, 8), "max": (8, 8)}
