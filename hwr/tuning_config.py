"""Configuration of the ``tune`` verb: its own parameters, defaults, help texts and validation
(the base training configuration is a :class:`~hwr.config.TrainConfig`). No MLflow, no TensorFlow."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from hwr.config import ConfigError, TrainConfig
from hwr.search_space import load_space

ALGOS = ("tpe", "random")
BACKENDS = ("local", "spark")
METRICS = ("val_cer", "val_wer", "val_loss", "loss")
TUNE_HELP = {
    "max_evals": "total number of trials (a resumed search continues up to this many)",
    "algo": "search algorithm: tpe (Tree-structured Parzen Estimator) or random",
    "trial_epochs": "epochs each trial trains (replaces train's epochs)",
    "metric": f"metric minimised, one of {', '.join(METRICS)} (best value over a trial's epochs)",
    "search_space": "YAML/JSON search-space file (empty: the default space); format in README, section 'The search space'",
    "resume_run_id": "parent run id of an interrupted search to continue (empty: start a new search)",
    "parallelism": "trials run at once (more than 1 needs backend=spark)",
    "backend": "local (trials one after another on this machine) or spark (SparkTrials)",
    "spark_master": "Spark master URL for backend=spark (empty: $SPARK_MASTER, else local[parallelism])",
    "isolate_trials": "backend=local: run each trial in a fresh child process, which frees TensorFlow's "
                      "memory after every trial and survives an out-of-memory kill (true/false)",
}


@dataclass(frozen=True)
class TuneConfig:
    """A search: the base training configuration (``epochs`` = ``trial_epochs``) and the search's
    own settings (see ``TUNE_HELP``)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    max_evals: int = 12
    algo: str = "tpe"
    trial_epochs: int = 5
    metric: str = "val_cer"
    search_space: str = ""
    resume_run_id: str = ""
    parallelism: int = 1
    backend: str = "local"
    spark_master: str = ""
    isolate_trials: bool = True

    @classmethod
    def from_flat(cls, flat: dict) -> "TuneConfig":
        """From flat parameters: the tune settings above plus any ``TrainConfig`` parameter."""
        own = {f.name for f in dataclasses.fields(cls)} - {"train"}
        mine = {k: v for k, v in flat.items() if k in own}
        train = TrainConfig().replace(**{k: v for k, v in flat.items() if k not in own})
        cfg = cls(train=train, **mine)
        return dataclasses.replace(cfg, train=train.replace(epochs=cfg.trial_epochs))

    def validate(self) -> "TuneConfig":
        """Check the settings, the base training configuration and the search-space file.

        Raises:
            ConfigError: naming the parameter (or the search-space file and its parameter).
        """
        for name, allowed in (("algo", ALGOS), ("backend", BACKENDS), ("metric", METRICS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        for name in ("max_evals", "trial_epochs", "parallelism"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.parallelism > 1 and self.backend != "spark":
            raise ConfigError(f"parallelism={self.parallelism} needs backend=spark (local runs one trial at a time)")
        self.train.validate()
        self.space()
        return self

    def space(self) -> dict[str, dict]:
        return load_space(self.search_space)

    def spark_url(self) -> str:
        return self.spark_master or os.environ.get("SPARK_MASTER") or f"local[{self.parallelism}]"
