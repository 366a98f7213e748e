"""The parameters of ``tune``, each declared once (see :mod:`hwr.config.params`): the search's
own settings, plus every ``train`` parameter but ``epochs`` and ``max_minutes`` (replaced by
``trial_epochs`` and ``trial_max_minutes``; ``tune``'s own ``max_minutes`` is the whole search's).
No MLflow, no TensorFlow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hwr.config import TrainConfig
from hwr.config.prediction import BACKENDS
from hwr.config.params import COUNT, MINUTES, POSITIVE, Config, param, parse_bool
from hwr.errors import ConfigError
from hwr.tuning.space import load_space

ALGOS = ("tpe", "random")
METRICS = ("val_cer", "val_wer", "val_loss", "loss")


@dataclass(frozen=True)
class TuneConfig(Config):
    """A search: its own settings and the base training configuration, whose parameters are the
    values of every parameter the search space does not vary (``epochs`` = ``trial_epochs``)."""

    HIDDEN = frozenset({"epochs"})

    max_evals: int = param(12, "total number of trials; a resumed search runs until this many are finished",
                           rule=POSITIVE)
    algo: str = param("tpe", "search algorithm: tpe (Tree-structured Parzen Estimator: the first "
                             "max(3, min(20, max_evals // 3)) trials are random, later ones are drawn near the "
                             "best so far) or random", choices=ALGOS)
    trial_epochs: int = param(5, "epochs each trial trains (replaces train's epochs; patience still stops a "
                                 "trial early)", rule=POSITIVE)
    trial_max_minutes: float = param(0.0, "training time of each trial in minutes (0 = none; train's max_minutes "
                                          "for every trial: the learning rate is planned to it)", rule=MINUTES)
    metric: str = param("val_cer", "minimised metric: val_cer (the trial's best validation CER, as train "
                                   "reports it), or the best per-epoch val_wer, val_loss or loss", choices=METRICS)
    search_space: str = param("", "YAML/JSON search-space file (empty: the default space); format in README, "
                                  "section 'The search space'")
    resume_run_id: str = param("", "parent run id of an interrupted search to continue (empty: start a new "
                                   "search)")
    parallelism: int = param(1, "trials run at once (more than 1 needs backend=spark)", rule=POSITIVE)
    backend: str = param("local", "local: trials one after another on this machine; spark: Hyperopt's "
                                  "SparkTrials", choices=BACKENDS)
    spark_master: str = param("", "Spark master URL for backend=spark (empty: $SPARK_MASTER, else "
                                  "local[parallelism])")
    isolate_trials: bool = param(True, "backend=local: run each trial in a fresh child process, which frees "
                                       "TensorFlow's memory after every trial and survives an out-of-memory kill "
                                       "(true/false; false is about 10 s faster per trial, for debugging)",
                                 parse=parse_bool)
    max_minutes: float = param(0.0, "wall-clock budget of the whole search in minutes (0 = none): no trial "
                                     "starts after it and a running trial stops at it (within one batch) with "
                                     "its best weights; a resumed search gets the budget again", rule=MINUTES)
    no_progress_trials: int = param(0, "stop the search when this many finished trials in a row bring no "
                                       "better metric than the best so far (Hyperopt's no_progress_loss rule; "
                                       "failed trials count as no progress; 0 = never)", rule=COUNT)
    prune: bool = param(True, "stop a hopeless trial after an epoch when its best metric so far is worse "
                              "than the median of that epoch over the earlier completed trials (Optuna's "
                              "MedianPruner rule; from epoch 3, once 2 trials completed); a pruned trial is "
                              "logged with its curve and reason and counts as done (true/false)",
                        parse=parse_bool)
    baseline_trial: bool = param(True, "trial 1 trains the tune run's own parameters (train's defaults "
                                       "unless given), so the parent run shows what the search gained over "
                                       "them (true/false; skipped with a note when a value is not in the space)",
                                 parse=parse_bool)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_flat(cls, flat: dict) -> "TuneConfig":
        """From flat parameters: the settings above plus any ``TrainConfig`` parameter but ``epochs``.

        Raises:
            ConfigError: an unknown parameter (``epochs`` included: use ``trial_epochs``).
        """
        cfg = cls().replace(**flat)
        return dataclasses.replace(cfg, train=cfg.train.replace(epochs=cfg.trial_epochs,
                                                                max_minutes=cfg.trial_max_minutes))

    def replace(self, **changes):
        if "epochs" in changes:
            raise ConfigError("tune has no parameter 'epochs': use trial_epochs")
        return super().replace(**changes)

    def check(self) -> None:
        """The rules across settings, and the search-space file (validated before any trial).

        Raises:
            ConfigError: naming the parameter (or the search-space file and its parameter).
        """
        if self.parallelism > 1 and self.backend != "spark":
            raise ConfigError(f"parallelism={self.parallelism} needs backend=spark (local runs one trial at a time)")
        self.space()

    def space(self) -> dict[str, dict]:
        return load_space(self.search_space)
