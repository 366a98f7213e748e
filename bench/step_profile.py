"""Where one training step's time goes: the default CRNN's step split into its parts, each timed
alone as a ``tf.function`` on real DHSD batches (20 batches after a warm-up).

    .venv/bin/python bench/step_profile.py [--data ../shared/data/dhsd]

Prints samples/s of the whole ``fit`` step, the tf.data pipeline alone, the forward pass, forward
+ backward with the model's CTC loss, the convolutions + dense alone, and ms per batch of the CTC
loss and its gradient with Keras' dense labels and TensorFlow's sparse labels. Results:
docs/performance.md.
"""

import argparse
import time

import tensorflow as tf
from keras import ops

from hwr.config import TrainConfig
from hwr.data.dataset import prepare_data
from hwr.model.crnn import prediction_model
from hwr.training.steps import build_model, datasets

STEPS = 20


def per_second(fn, batches, batch_size: int) -> float:
    fn(batches[0])
    started = time.perf_counter()
    for batch in batches:
        fn(batch)
    return len(batches) * batch_size / (time.perf_counter() - started)


def ctc_gradient(sparse: bool):
    """Loss + gradient w.r.t. the probabilities, with dense (Keras) or sparse (TensorFlow) labels."""
    @tf.function
    def step(probs, labels):
        with tf.GradientTape() as tape:
            tape.watch(probs)
            frames = tf.fill([tf.shape(probs)[0]], tf.shape(probs)[1])
            if sparse:
                loss = tf.nn.ctc_loss(tf.sparse.from_dense(labels), tf.math.log(probs + 1e-7), None, frames,
                                      logits_time_major=False, blank_index=0)
            else:
                lengths = tf.reduce_sum(tf.cast(labels != 0, tf.int32), -1)
                loss = ops.ctc_loss(labels, ops.log(probs + 1e-7), lengths, frames, mask_index=0)
        return tape.gradient(tf.reduce_mean(loss), probs)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/dhsd")
    args = parser.parse_args()
    cfg = TrainConfig().replace(data=args.data, max_per_split=640).validate()
    data = prepare_data(cfg.data, cfg.model, cfg.seed)
    model = build_model(cfg, data.charset)
    train_ds, _ = datasets(cfg, data)
    batches = list(train_ds.take(STEPS))
    size = cfg.batch_size

    model.fit(train_ds.repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(train_ds.repeat(), steps_per_epoch=STEPS, epochs=1, verbose=0)
    print(f"whole fit step:                    {STEPS * size / (time.perf_counter() - started):8.1f} samples/s")
    started = time.perf_counter()
    for _ in train_ds.repeat().take(STEPS):
        pass
    print(f"input pipeline alone:              {STEPS * size / (time.perf_counter() - started):8.1f} samples/s")

    recognizer = prediction_model(model)
    forward = tf.function(lambda b: recognizer(b["image"], training=True))
    print(f"forward pass (training mode):      {per_second(forward, batches, size):8.1f} samples/s")

    @tf.function
    def forward_backward(batch):
        with tf.GradientTape() as tape:
            model(batch, training=True)
            loss = tf.add_n(model.losses)
        return tape.gradient(loss, model.trainable_variables)
    print(f"forward + backward, model's CTC:   {per_second(forward_backward, batches, size):8.1f} samples/s")

    features = tf.keras.Model(recognizer.input, recognizer.get_layer("dropout1").output)

    @tf.function
    def conv_step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(features(batch["image"], training=True))
        return tape.gradient(loss, features.trainable_variables)
    print(f"convolutions + dense, fwd + bwd:   {per_second(conv_step, batches, size):8.1f} samples/s")

    probs, labels = recognizer(batches[0]["image"]), tf.cast(batches[0]["label"], tf.int32)
    for name, sparse in (("dense labels (keras.ops)", False), ("sparse labels (tf.nn)", True)):
        step = ctc_gradient(sparse)
        step(probs, labels)
        started = time.perf_counter()
        for _ in range(STEPS):
            step(probs, labels)
        print(f"CTC loss + gradient, {name}: {(time.perf_counter() - started) / STEPS * 1000:6.1f} ms per batch")


if __name__ == "__main__":
    main()
