"""The ``promote`` verb: score ``@challenger`` and ``@champion`` of the prediction model on the same
split, log both CERs and a paired bootstrap confidence interval of their difference as a run, and
move ``@champion`` on *both* registered models (the pyfunc and the full model of the challenger's
training run) only when the whole interval says the challenger is better, or when forced.

Models trained on different data (different digests of their runs' ``train`` dataset inputs) are
not compared unless forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from hwr.config import PromoteConfig
from hwr.data.sources import image_table
from hwr.errors import ConfigError
from hwr.evaluation import metrics
from hwr.evaluation.scoring import paired_cer_difference
from hwr.mlflow import runs
from hwr.mlflow.datasets import data_source, log_dataset, split_dataset
from hwr.mlflow.pyfunc import DEFAULT_PARAMS
from hwr.prediction.models import load_models
from hwr.prediction.predict import transcribe_table, unreadable_failure


@dataclass(frozen=True)
class Candidate:
    """One side of the comparison: the prediction model's version, the run that trained it, the
    full model's version from the same run (None if there is none), and the digest of the run's
    ``train`` dataset input (None if it logged none)."""

    version: int
    run_id: str
    full_version: int | None
    train_digest: str | None

    def uri(self, name: str) -> str:
        return f"models:/{name}/{self.version}"


@dataclass
class Decision:
    """The outcome: both CERs, the difference (challenger minus champion) with its interval,
    whether ``@champion`` moved, and why."""

    promoted: bool
    reason: str
    run_id: str = ""
    scores: dict[str, float] = field(default_factory=dict)


def version_run_id(version) -> str:
    """The training run of a registered ``ModelVersion``: its ``run_id`` tag (set by hwr), else MLflow's."""
    return version.tags.get("run_id") or version.run_id or ""


def candidate(client: MlflowClient, cfg: PromoteConfig, alias: str) -> Candidate | None:
    """The versions behind ``alias`` (None when ``model_name`` has no such alias).

    Raises:
        ConfigError: no registered model ``model_name``.
    """
    try:
        aliases = client.get_registered_model(cfg.model_name).aliases
    except MlflowException as exc:
        raise ConfigError(f"model_name={cfg.model_name!r}: no such registered model ({exc.error_code})") from exc
    if alias not in aliases:
        return None
    version = client.get_model_version(cfg.model_name, str(aliases[alias]))
    run_id = version_run_id(version)
    fulls = [v for v in client.search_model_versions(f"name = '{cfg.full_model_name}'") if version_run_id(v) == run_id]
    full = max((int(v.version) for v in fulls), default=None)
    return Candidate(int(version.version), run_id, full, train_digest(client, run_id))


def train_digest(client: MlflowClient, run_id: str) -> str | None:
    """The digest of the run's dataset input with context ``train`` (None when it has none)."""
    if not run_id:
        return None
    for item in client.get_run(run_id).inputs.dataset_inputs:
        if any(t.key == "mlflow.data.context" and t.value == "train" for t in item.tags):
            return item.dataset.digest
    return None


def refusal(cfg: PromoteConfig, challenger: Candidate, champion: Candidate) -> str | None:
    """Why the two may not be compared (unless forced), or None."""
    if challenger.full_version is None:
        return (f"{cfg.full_model_name} has no version from the challenger's run {challenger.run_id}: moving "
                f"@{cfg.champion} would split the pair")
    if challenger.train_digest is None or champion.train_digest is None:
        return "the training data of one of the two is unknown (its run logged no train dataset)"
    if challenger.train_digest != champion.train_digest:
        return (f"the two were trained on different data (train dataset digests {challenger.train_digest} and "
                f"{champion.train_digest}): a CER difference would not say which recipe is better")
    return None


def score_both(cfg: PromoteConfig, challenger: Candidate, champion: Candidate) -> dict[str, float]:
    """Transcribe the split with both models (the pyfunc's default, greedy decoding), log the split
    as the run's dataset input and return the scores (``challenger_cer``, ``champion_cer``,
    ``cer_difference`` with ``cer_difference_ci_low`` / ``_high``, the WERs, ``n_evaluated``,
    ``n_unreadable``)."""
    table = image_table(cfg.data, cfg.split, True, cfg.seed)
    models = load_models([challenger.uri(cfg.model_name), champion.uri(cfg.model_name)])
    frames = list(transcribe_table(table, models, DEFAULT_PARAMS, cfg.batch_size).values())
    failure = unreadable_failure(frames[0], 1.0)  # every image unreadable: nothing to compare on
    if failure is not None:
        raise failure
    ok = (frames[0]["error"] == "").to_numpy()  # undecodable images are found while reading
    truths = table.loc[ok, "truth"].tolist()
    new, old = (f.loc[ok, "prediction"].tolist() for f in frames)
    difference, low, high = paired_cer_difference(truths, new, old, cfg.confidence, cfg.resamples, cfg.seed)
    dataset = split_dataset(table, data_source(cfg.data),
                            f"{runs.data_name(cfg.data.data)}-{cfg.split}", "truth")
    log_dataset(dataset, cfg.split)
    scores = {"challenger_cer": metrics.cer(truths, new), "champion_cer": metrics.cer(truths, old),
              "challenger_wer": metrics.wer(truths, new), "champion_wer": metrics.wer(truths, old),
              "cer_difference": difference, "cer_difference_ci_low": low, "cer_difference_ci_high": high,
              "n_evaluated": len(truths), "n_unreadable": int((~ok).sum())}
    for m, side in zip(models, ("challenger", "champion")):
        runs.log_metrics({k: v for k, v in scores.items() if k.startswith(side)}, model_ids=m.model_ids, dataset=dataset)
    runs.log_metrics({k: v for k, v in scores.items() if not k.startswith(("challenger", "champion"))})
    return scores


def verdict(cfg: PromoteConfig, scores: dict[str, float]) -> tuple[bool, str]:
    """(promote?, why) from the interval: only a wholly negative difference (challenger lower) wins."""
    level = f"{cfg.confidence:.0%} CI [{scores['cer_difference_ci_low']:+.4f}, {scores['cer_difference_ci_high']:+.4f}]"
    change = f"CER {scores['champion_cer']:.4f} -> {scores['challenger_cer']:.4f} ({scores['cer_difference']:+.4f}, {level})"
    if scores["cer_difference_ci_high"] < 0:
        return True, f"the challenger is better: {change}"
    if scores["cer_difference_ci_low"] > 0:
        return False, f"the challenger is worse: {change}"
    return False, f"no clear difference: {change}, the interval contains 0"


def move_champion(client: MlflowClient, cfg: PromoteConfig, challenger: Candidate, run_id: str, forced: bool) -> None:
    """Point ``@champion`` at the challenger's versions of both registered models, and tag them."""
    pairs = [(cfg.model_name, challenger.version)]
    if challenger.full_version is not None:
        pairs.append((cfg.full_model_name, challenger.full_version))
    for name, version in pairs:
        client.set_registered_model_alias(name, cfg.champion, str(version))
        client.set_model_version_tag(name, str(version), "promoted_by_run", run_id)
        if forced:
            client.set_model_version_tag(name, str(version), "promotion_forced", "true")


def run_promote(cfg: PromoteConfig) -> Decision:
    """The ``promote`` entry point (see the module docstring); one MLflow run tagged ``hwr.verb=promote``.

    Raises:
        ConfigError: no such registered model or challenger; models trained on different data (unless forced).
        BadInputError: the data set or split cannot be read.
    """
    cfg.validate()
    client = MlflowClient()
    challenger = candidate(client, cfg, cfg.challenger)
    champion = candidate(client, cfg, cfg.champion)
    if challenger is None:
        raise ConfigError(f"{cfg.model_name} has no version with alias @{cfg.challenger}: nothing to promote")
    if champion is not None and champion.version == challenger.version:
        print(f"@{cfg.challenger} and @{cfg.champion} are both {cfg.model_name} version {champion.version}: "
              "nothing to do", flush=True)
        return Decision(False, "same version")
    blocked = refusal(cfg, challenger, champion) if champion is not None else None
    if blocked and not cfg.force:
        raise ConfigError(f"not promoted: {blocked} (-P force=true promotes anyway)")
    with mlflow.start_run(log_system_metrics=cfg.system_metrics) as run:
        runs.name_run("promote", cfg.data.data)
        mlflow.set_tag(runs.VERB, "promote")
        runs.log_params(cfg.flat_params() | side_params(cfg, challenger, champion))
        decision = decide(client, cfg, challenger, champion, blocked, run.info.run_id)
        runs.describe_run(promotion_markdown(cfg, challenger, champion, decision))
    print(f"{'PROMOTED' if decision.promoted else 'not promoted'}: {decision.reason}", flush=True)
    return decision


def side_params(cfg: PromoteConfig, challenger: Candidate, champion: Candidate | None) -> dict:
    """The compared versions and their runs, as run parameters."""
    out = {"challenger_version": challenger.version, "challenger_run_id": challenger.run_id,
           "challenger_full_version": challenger.full_version}
    if champion is not None:
        out |= {"champion_version": champion.version, "champion_run_id": champion.run_id}
    return {k: v for k, v in out.items() if v is not None}


def decide(client, cfg: PromoteConfig, challenger: Candidate, champion: Candidate | None, blocked: str | None,
           run_id: str) -> Decision:
    """Score (when there is a champion), decide, move the aliases, and tag the run with the outcome."""
    if champion is None:
        promoted, reason, scores = True, f"{cfg.model_name} had no @{cfg.champion}", {}
    else:
        scores = score_both(cfg, challenger, champion)
        promoted, reason = verdict(cfg, scores)
    forced = cfg.force and (not promoted or blocked is not None)
    if forced:
        promoted, reason = True, f"forced (force=true) although {blocked or reason}"
    if promoted:
        move_champion(client, cfg, challenger, run_id, forced)
    runs.log_metrics({"promoted": int(promoted)})
    mlflow.set_tags({"hwr.promoted": str(promoted).lower(), "hwr.promotion_reason": reason,
                     "hwr.promotion_forced": str(forced).lower()})
    return Decision(promoted, reason, run_id, scores)


def promotion_markdown(cfg: PromoteConfig, challenger: Candidate, champion: Candidate | None,
                       decision: Decision) -> str:
    """The run's description: what was compared on which split, and the decision."""
    old = f"version {champion.version} (run `{champion.run_id}`)" if champion else "none"
    lines = [f"Compared `{cfg.model_name}` @{cfg.challenger} version {challenger.version} (run `{challenger.run_id}`) "
             f"with @{cfg.champion} {old} on split `{cfg.split}` of `{cfg.data.data}`.",
             f"**{'Promoted' if decision.promoted else 'Not promoted'}**: {decision.reason}."]
    if decision.promoted:
        full = f" and `{cfg.full_model_name}` version {challenger.full_version}" if challenger.full_version else ""
        lines.append(f"@{cfg.champion} is now `{cfg.model_name}` version {challenger.version}{full}.")
    return "\n\n".join(lines)
