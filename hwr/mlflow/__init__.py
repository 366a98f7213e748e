"""Everything MLflow: run logging and tags (``runs``), model packaging (``packaging``), the
registry's alias policy (``registry``) and the served prediction model (``pyfunc``).

The layers below (config, data, evaluation, model) never import MLflow, so they are testable
without a tracking store.
"""
