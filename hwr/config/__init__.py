"""Typed configuration of every verb; each parameter declared once (type, default, help, rule).

``params`` is the declaration mechanism, ``training`` the parameters of ``train`` and
``finetune``, ``prediction`` those of ``predict``, ``pretraining`` those of ``pretrain``, ``promotion`` those of ``promote`` (``tune``'s own are in :mod:`hwr.tuning.config`).
"""

from hwr.config.params import Config, parse_int_list
from hwr.config.prediction import PredictConfig
from hwr.config.pretraining import PretrainConfig
from hwr.config.promotion import PromoteConfig
from hwr.config.training import DataConfig, FinetuneConfig, ModelConfig, TrainConfig

__all__ = ["Config", "DataConfig", "FinetuneConfig", "ModelConfig", "PredictConfig", "PretrainConfig", "PromoteConfig", "TrainConfig",
           "parse_int_list"]
