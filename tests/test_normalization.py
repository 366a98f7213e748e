"""The fused batch normalisation trains like Keras' own layer: same outputs, gradients and moving
statistics (it only runs TensorFlow's fused kernel instead of Keras' separate operations)."""

import pytest


@pytest.mark.parametrize("shape", [(4, 6, 10, 3), (4, 12, 5)])
@pytest.mark.parametrize("momentum", [0.5, 0.99])
def test_a_training_step_matches_keras_batch_normalization(shape, momentum):
    import keras
    import numpy as np
    import tensorflow as tf

    from hwr.model.normalization import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    target = tf.constant(rng.normal(size=shape).astype("float32"))
    fused, reference = FusedBatchNormalization(momentum=momentum), keras.layers.BatchNormalization(momentum=momentum)
    for layer in (fused, reference):
        layer.build(shape)
        n = shape[-1]
        layer.set_weights([np.linspace(0.5, 1.5, n), np.linspace(-0.2, 0.2, n), np.full(n, 0.3), np.full(n, 2.0)])
    outputs, grads = [], []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum((y - target) ** 2 * tf.range(1.0, shape[-1] + 1.0))
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    assert np.abs(outputs[0]).max() > 1.0
    for mine, theirs in zip(*grads):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
    for mine, theirs in zip(fused.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5)
    # the moving statistics moved from (0.3, 2.0) towards the batch's biased mean and variance
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(fused.moving_mean, 0.3 * momentum + (1 - momentum) * np.mean(x, axes), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, 2.0 * momentum + (1 - momentum) * np.var(x, axes), rtol=1e-5)


def test_inference_uses_the_moving_statistics_and_the_layer_saves_and_loads(tmp_path):
    import keras
    import numpy as np

    from hwr.model.normalization import FusedBatchNormalization

    inputs = keras.Input((6, 10, 2))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.get_layer("bn").set_weights([np.array([2.0, 1.0]), np.array([0.5, 0.0]), np.array([1.0, -1.0]),
                                       np.array([4.0, 1.0])])
    x = np.ones((1, 6, 10, 2), "float32")
    expected = [2.0 * (1.0 - 1.0) / np.sqrt(4.0 + 1e-3) + 0.5, (1.0 + 1.0) / np.sqrt(1.0 + 1e-3)]
    np.testing.assert_allclose(model(x, training=False)[0, 0, 0], expected, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False))
