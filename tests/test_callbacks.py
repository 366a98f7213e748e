"""The training loop's callbacks, each alone, driven by scripted per-epoch logs (no training)."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from hwr.training.callbacks import (BestWeights, PlateauEarlyStopping, PlateauReduceLR, StopOnNaN,
                                    ValidationMetrics, learning_rate)

BLANK = {"val_empty_rate": 1.0}  # CTC's all-blank plateau: every val transcription is empty
READING = {"val_empty_rate": 0.0}


def tiny_model(lr: float = 0.008) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="mse")
    return model


def drive(callback, model, epochs: list[dict]) -> list[dict]:
    """Run the callback over scripted epoch logs; returns, per epoch, the rate after it and the stop flag."""
    callback.set_model(model)
    callback.on_train_begin()
    seen = []
    for epoch, logs in enumerate(epochs):
        callback.on_epoch_end(epoch, dict(logs))
        seen.append({"lr": learning_rate(model), "stop": bool(model.stop_training)})
    return seen


def test_learning_rate_halves_after_three_epochs_without_improvement_down_to_a_sixteenth():
    model = tiny_model(0.008)
    cers = [0.9] + [0.95] * 15
    lrs = [s["lr"] for s in drive(PlateauReduceLR(), model, [{"val_cer": c, **READING} for c in cers])]
    assert lrs[:3] == pytest.approx([0.008] * 3)
    assert lrs[3] == pytest.approx(0.004)  # the 3rd epoch without a better val_cer
    assert lrs[6] == pytest.approx(0.002) and lrs[9] == pytest.approx(0.001)
    assert lrs[12] == pytest.approx(0.0005) and lrs[-1] == pytest.approx(0.0005)  # floor: 0.008 / 16


def test_an_improvement_resets_the_count():
    model = tiny_model(0.008)
    cers = [0.9, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85]
    lrs = [s["lr"] for s in drive(PlateauReduceLR(), model, [{"val_cer": c, **READING} for c in cers])]
    assert lrs == pytest.approx([0.008] * 6 + [0.004])


def test_no_decay_and_no_stop_while_the_model_only_emits_blanks():
    model = tiny_model(0.008)
    blank_epochs = [{"val_cer": 1.0, **BLANK}] * 12
    assert [s["lr"] for s in drive(PlateauReduceLR(), model, blank_epochs)] == pytest.approx([0.008] * 12)
    assert not any(s["stop"] for s in drive(PlateauEarlyStopping(patience=2), tiny_model(), blank_epochs))


def test_a_model_that_emits_wrong_characters_is_off_the_plateau():
    """val_cer never below 1.0 (insertions), but characters are emitted: the schedule and early
    stopping work (with a val_cer gate they never would)."""
    epochs = [{"val_cer": c, **READING} for c in (1.4, 1.5, 1.5, 1.5, 1.6)]
    assert drive(PlateauReduceLR(), tiny_model(0.008), epochs)[3]["lr"] == pytest.approx(0.004)
    assert [s["stop"] for s in drive(PlateauEarlyStopping(patience=3), tiny_model(), epochs)] == [
        False, False, False, True, True]


def test_early_stopping_counts_from_leaving_the_plateau():
    epochs = [{"val_cer": 1.0, **BLANK}] * 5 + [{"val_cer": c, **READING} for c in (0.7, 0.6, 0.65, 0.66)]
    stops = [s["stop"] for s in drive(PlateauEarlyStopping(patience=2), tiny_model(), epochs)]
    assert stops == [False] * 8 + [True]


def test_best_weights_are_restored_at_the_end():
    model = tiny_model()
    best = BestWeights()
    best.set_model(model)
    best.on_train_begin()
    for epoch, cer in enumerate([0.5, 0.3, 0.4, 0.35]):
        model.set_weights([np.full((2, 1), epoch, np.float32), np.full((1,), epoch, np.float32)])
        best.on_epoch_end(epoch, {"val_cer": cer})
    best.on_train_end()
    assert (best.best_cer, best.best_epoch) == (0.3, 1)
    assert model.get_weights()[0].tolist() == [[1.0], [1.0]]


def test_nan_loss_stops_training_and_remembers_epoch_batch_and_rate():
    model = tiny_model(0.02)
    stop = StopOnNaN()
    stop.set_model(model)
    stop.on_epoch_begin(2)
    stop.on_batch_end(0, {"loss": 3.0})
    assert not model.stop_training and stop.nan_at is None
    stop.on_batch_end(6, {"loss": math.nan})
    assert model.stop_training and stop.nan_at == (3, 7, pytest.approx(0.02)) and math.isnan(stop.loss)
    stop.on_batch_end(7, {"loss": math.inf})
    assert stop.nan_at == (3, 7, pytest.approx(0.02))  # the first one is kept (fit names it)


def test_plateau_counters_survive_a_checkpoint():
    reduce = PlateauReduceLR()
    reduce.set_model(tiny_model(0.02))
    reduce.on_train_begin()
    for epoch, cer in enumerate([0.5, 0.4, 0.45]):
        reduce.on_epoch_end(epoch, {"val_cer": cer, "val_empty_rate": 0.0})
    state = json.loads(json.dumps(reduce.get_state(), default=float))  # as a checkpoint stores it
    again = PlateauReduceLR()
    again.set_model(tiny_model(0.02))
    again.on_train_begin()  # resets the counters, as fit does; the checkpoint's come back after it
    again.set_state(state)
    assert (again.wait, again.best, again.left_plateau) == (1, pytest.approx(0.4), True)


def test_validation_metrics_adds_cer_wer_and_empty_rate():
    from hwr.config import ModelConfig
    from hwr.data.charset import Charset
    from hwr.evaluation import metrics
    from hwr.model.crnn import build_crnn, compile_model, prediction_model
    from hwr.model.inference import transcribe

    keras.utils.set_random_seed(0)
    charset = Charset.from_texts(["abc"])
    cfg = ModelConfig(img_height=16, img_width=32, conv_filters=(4, 4), dense_units=8, lstm1_units=4, lstm2_units=4)
    full = compile_model(build_crnn(cfg, charset.num_classes), 1e-3)
    images = np.random.default_rng(0).random((3, 16, 32, 1)).astype("float32")
    truth = ["ab", "c", "cab"]
    callback = ValidationMetrics(images, truth, charset, extra_logs={"phase": 2})
    logs = drive_one(callback, full)
    texts, _ = transcribe(prediction_model(full), charset, images)
    assert logs["val_cer"] == pytest.approx(metrics.cer(truth, texts))
    assert logs["val_wer"] == pytest.approx(metrics.wer(truth, texts))
    assert logs["val_empty_rate"] == pytest.approx(np.mean([t == "" for t in texts]))
    assert logs["learning_rate"] == pytest.approx(1e-3) and logs["phase"] == 2


def drive_one(callback, model) -> dict:
    callback.set_model(model)
    callback.on_train_begin()
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    return logs
