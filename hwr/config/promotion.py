"""The parameters of ``promote``, each declared once (see :mod:`hwr.config.params`); the data set's
are :class:`~hwr.config.training.DataConfig`'s. Knows nothing of MLflow or TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwr.config.params import NOT_BLANK, POSITIVE, Config, Rule, param, parse_bool, same_as
from hwr.config.prediction import PredictConfig
from hwr.config.training import SPLITS, DataConfig, TrainConfig
from hwr.errors import ConfigError

CONFIDENCE = Rule(lambda v: 0.5 <= v < 1.0, "a confidence level in [0.5, 1), e.g. 0.95")


@dataclass(frozen=True)
class PromoteConfig(Config):
    """One promotion decision: compare ``@challenger`` with ``@champion`` on one split of a data set
    and move ``@champion`` on both registered models when the challenger is better."""

    HIDDEN = frozenset({"on_bad_input", "max_per_split"})  # unreadable images are skipped for both models

    data: DataConfig = field(default_factory=DataConfig)
    split: str = param("test", "the evaluation split both models are scored on (a split used for many "
                               "promotions becomes a selection set: keep a separate gate set, see README)",
                       choices=SPLITS)
    model_name: str = same_as(TrainConfig, "model_name")
    full_model_name: str = same_as(TrainConfig, "full_model_name")
    challenger: str = param("challenger", "alias of the candidate version of model_name", rule=NOT_BLANK)
    champion: str = param("champion", "alias of the current version; moved to the challenger's versions (on "
                                      "model_name and full_model_name) when the challenger wins", rule=NOT_BLANK)
    confidence: float = param(0.95, "confidence level of the paired bootstrap interval of the CER difference; "
                                    "the challenger wins when the whole interval is below 0", rule=CONFIDENCE)
    resamples: int = param(1000, "bootstrap resamples", rule=POSITIVE)
    force: bool = param(False, "move @champion whatever the interval says, and even when the two models "
                               "were trained on different data (recorded in the run and on the versions)",
                        parse=parse_bool)
    batch_size: int = same_as(PredictConfig, "batch_size")
    seed: int = same_as(TrainConfig, "seed")
    system_metrics: bool = same_as(TrainConfig, "system_metrics")

    def check(self) -> None:
        if self.challenger == self.champion:
            raise ConfigError(f"challenger and champion are the same alias ({self.champion!r})")
