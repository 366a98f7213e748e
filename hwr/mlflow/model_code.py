"""The prediction model as MLflow "Models From Code" (https://mlflow.org/docs/latest/ml/model/models-from-code/):
:func:`hwr.mlflow.packaging.log_models` logs this file as the pyfunc's ``python_model``, so a logged
model stores code instead of a pickle, and loads where ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``.
MLflow runs this file when it loads the model (with the model's ``code/hwr`` on the import path);
the weights, charset and geometry come from the model's artifacts in ``load_context``.
"""

from mlflow.models import set_model

from hwr.mlflow.pyfunc import HwrPredictionModel

set_model(HwrPredictionModel())
