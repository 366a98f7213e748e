"""The parameters of ``pretrain``, each declared once (see :mod:`hwr.config.params`): the synthetic
lines' own settings, plus every ``train`` parameter (the data set is the collection the base model
is for: its training labels give the text, its training images the geometry) but ``resume_run_id``.
No MLflow, no TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwr.config.params import NOT_BLANK, POSITIVE, Config, param
from hwr.config.training import TrainConfig


@dataclass(frozen=True)
class PretrainConfig(Config):
    """A pretraining run: draw synthetic lines of the collection's text, then train on them (with
    the training settings of ``train``) and register the result as a base model for ``finetune``."""

    HIDDEN = frozenset({"resume_run_id"})

    fonts: str = param("debian", "fonts to draw the synthetic lines in: `debian` (the handwriting-like fonts "
                                 "`make fonts` installs) or comma-separated .ttf/.otf files and folders; each "
                                 "line is drawn in a random font that has glyphs for all its characters",
                       rule=NOT_BLANK)
    n_lines: int = param(20000, "synthetic training lines (plus a tenth as many for val and for test, at most 300 "
                                "and 200), cut from the running words of the data's training labels at their "
                                "line lengths",
                         rule=POSITIVE)
    synthetic_cache: str = param("~/.cache/hwr/synthetic", "folder where drawn synthetic sets are kept (keyed "
                                                           "by the text, the fonts, n_lines, seed and the "
                                                           "model's CTC frames) for the next run", rule=NOT_BLANK)
    model_name: str = param("hwr-base", "registered model name of the base model's prediction (pyfunc) model",
                            rule=NOT_BLANK)
    full_model_name: str = param("hwr-base-full", "registered model name of the base model's full model: "
                                                  "finetune's base_model, e.g. models:/hwr-base-full/1",
                                 rule=NOT_BLANK)
    train: TrainConfig = field(default_factory=TrainConfig)

    def training(self) -> TrainConfig:
        """The training configuration, with this verb's registered model names."""
        return self.train.replace(model_name=self.model_name, full_model_name=self.full_model_name)
