"""The Model Registry policy: a new version gets ``@champion`` when its registered model has
none yet, else ``@challenger`` (aliases, never stages)."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient

AUTO = "auto"


def register(model_uri: str, name: str, tags: dict, alias: str = AUTO, description: str = "",
             model_description: str = "") -> int:
    """Register ``model_uri`` as a new version of ``name``, tag and describe the version and set an
    alias; the registered model gets ``model_description`` when it has none yet.

    ``alias="auto"``: ``champion`` if the registered model has no champion yet, else
    ``challenger``. Any other value is set as given. Returns the version number.
    """
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name)
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, str(value))
    if description:
        client.update_model_version(name, version.version, description=description)
    if model_description and not client.get_registered_model(name).description:
        client.update_registered_model(name, description=model_description)
    if alias == AUTO:
        aliases = client.get_registered_model(name).aliases
        alias = "challenger" if "champion" in aliases else "champion"
    client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)
