"""Batch normalisation with TensorFlow's fused kernel in training.

Keras 3's :class:`keras.layers.BatchNormalization` normalises a training batch with separate
operations (``tf.nn.moments``, then ``tf.nn.batch_normalization``), each a pass over the feature map
forward and more backward; tf.keras 2 called TensorFlow's fused kernel (``FusedBatchNormV3``, oneDNN
on CPUs), and Keras' own tracker noted the gap ("BatchNorm is slow", keras-team/keras-core#225).
On this project's 2-core CPU hosts the three batch norms of the default word model cost more than
its three convolutions: forward + backward of the convolution stack on a batch of 32 DHSD-sized
images 40-63 ms with Keras' layer, 24-27 ms with the fused kernel (docs/performance.md).
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="hwr")
class FusedBatchNormalization(layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` (same weights, arguments and inference) whose
    training step on ``(batch, height, width, channels)`` or ``(batch, frames, channels)`` float32
    inputs, normalised over the last axis, runs TensorFlow's fused kernel. The moving statistics move
    as Keras' layer moves them (``momentum``; the batch's biased variance, as Keras uses it: the
    kernel returns the Bessel-corrected one, which is scaled back). Any other case (inference, a
    mask, another axis) is Keras' own code."""

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if not (training and self.trainable) or mask is not None or rank not in (3, 4) or \
                self.axis not in (-1, rank - 1) or self.renorm or not (self.center and self.scale):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.expand_dims(inputs, 2) if rank == 3 else inputs
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            tf.cast(x, "float32"), self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        y = tf.squeeze(y, 2) if rank == 3 else y
        return tf.cast(y, self.compute_dtype)
