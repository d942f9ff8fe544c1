"""The pipeline's stages in one table, read by both drivers: the stage CLI that `dvc repro` runs
(`python -m stages.<module>`, stages/_cli.py) and the Prefect flow (flows/training.py).

Each row: the dvc.yaml stage name, the function that does the work, the keyword a `foreach` stage's
item is passed as (`train@svm` -> train(params, model="svm")), where the stage writes (a params key,
named in its one-line report) and how its summary is told in that line. A test holds the table and
dvc.yaml to each other (tests/code/test_stage_table.py).

Functions are named "module:function" and imported when a stage runs, not when the table is read:
the embed stage loads TensorFlow, which no other stage should pay for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from musicgenre.config import resolve
from musicgenre.errors import ConfigError

Summary = dict[str, Any]
StageFunction = Callable[..., Summary]

# Top-level summary keys told in a stage's line, in this order (counts and outcomes; never timings).
HEADLINE_KEYS = ("tracks", "kept", "dropped", "unreadable", "rows", "columns", "dimensions", "failed", "success")


def counts(summary: Summary) -> str:
    """'170 tracks, 3 dropped, 0 failed': the HEADLINE_KEYS present; a list is told by its length."""
    parts = []
    for key in HEADLINE_KEYS:
        if key in summary:
            value = summary[key]
            parts.append(f"{len(value) if isinstance(value, (list, dict)) else value} {key}")
    return ", ".join(parts)


def split_sizes(summary: Summary) -> str:
    """'grouped: test 35, train 100, valid 35; random: ...' (tracks per part of each protocol)."""
    told = {
        protocol.removeprefix("split_"): ", ".join(f"{part} {n}" for part, n in sorted(sizes.items()))
        for protocol, sizes in summary.items()
    }
    return "; ".join(f"{protocol}: {parts}" for protocol, parts in told.items())


def accuracies(summary: Summary) -> str:
    """'grouped valid/test accuracy 0.62/0.58, random 0.81/0.79' (a train run, per protocol)."""
    return ", ".join(
        f"{protocol} valid/test accuracy {scores.get('valid_accuracy')}/{scores.get('test_accuracy')}"
        for protocol, scores in summary.items()
        if isinstance(scores, dict)
    )


def best_model(summary: Summary) -> str:
    """'20 runs scored; best grouped-CV macro-F1 0.645 ± 0.122 (transfer_concat)': the champion's criterion."""
    runs = sum(len(by_protocol) for by_protocol in summary.values())
    cv = [
        (scores["cv_macro_f1_mean"], scores["cv_macro_f1_std"], model)
        for model, by_protocol in summary.items()
        for scores in by_protocol.values()
        if "cv_macro_f1_mean" in scores
    ]
    if not cv:
        return f"{runs} runs scored; none cross-validated"
    mean, std, model = max(cv)
    return f"{runs} runs scored; best grouped-CV macro-F1 {mean:.3f} ± {std:.3f} ({model})"


def promotion(summary: Summary) -> str:
    """'candidate svm v7: kept the champion; champion v5 (transfer_logreg)'."""
    candidate, champion = summary.get("candidate", {}), summary.get("champion", {})
    return (
        f"candidate {candidate.get('model')} v{candidate.get('version')}: {summary.get('decision')}; "
        f"champion v{champion.get('version')} ({champion.get('model')})"
    )


def export_check(summary: Summary) -> str:
    """'MSD_musicnn, MSD_vgg as ONNX, within 1.2e-06, 1.6e-06 of their layers' range from TensorFlow'."""
    exports = [summary[key] for key in ("tagger", "base") if isinstance(summary.get(key), dict)]
    names = ", ".join(str(e.get("tagger")) for e in exports)
    errors = ", ".join(str(e.get("onnx_vs_tensorflow")) for e in exports)
    return f"{names} as ONNX, within {errors} of their layers' range from TensorFlow"


@dataclass(frozen=True)
class Stage:
    name: str  # the dvc.yaml stage (a foreach stage's runs are name@item)
    target: str  # "module:function"
    writes: str  # dotted params key of the folder or file the stage writes
    foreach: str | None = None  # keyword of the foreach item, None for a single stage
    headline: Callable[[Summary], str] = counts

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def function(self) -> StageFunction:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def output(self, params: dict[str, Any], item: str | None = None) -> str:
        """Where this run writes, as params say (a foreach run: its item's folder under it)."""
        node: Any = params
        for key in self.writes.split("."):
            node = node[key]
        return str(resolve(node) / item if item else resolve(node))


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("ingest", "stages.ingest:ingest", writes="paths.manifest"),
        Stage("validate", "stages.validate:validate", writes="paths.audio_validation"),
        Stage("featurize", "stages.featurize:featurize", writes="paths.features_dir"),
        Stage("validate_features", "stages.validate_features:validate_features", writes="paths.feature_validation"),
        Stage("split", "stages.split:split", writes="paths.splits", headline=split_sizes),
        Stage(
            "export_tagger",
            "stages.export_tagger:export_tagger_stage",
            writes="paths.tagger_dir",
            headline=export_check,
        ),
        Stage("embed", "stages.embed:embed", writes="paths.embeddings_dir"),
        Stage("embed_patches", "stages.embed_patches:embed_patches", writes="paths.patches_dir"),
        Stage("train", "stages.train:train", writes="paths.models", foreach="model", headline=accuracies),
        Stage(
            "train_transfer",
            "stages.train_transfer:train_transfer",
            writes="paths.models",
            foreach="model",
            headline=accuracies,
        ),
        Stage("evaluate", "stages.evaluate:evaluate", writes="evaluate.report_dir", headline=best_model),
        Stage("register", "stages.register:register_stage", writes="register.report_dir", headline=promotion),
    )
}


def lookup(run: str) -> tuple[Stage, str | None]:
    """The table row and foreach item of a dvc.yaml stage run: 'split' -> (split, None),
    'train@svm' -> (train, 'svm')."""
    name, _, item = run.partition("@")
    if name not in STAGES:
        raise ConfigError(f"stage {name!r} is not in stages.table.STAGES (known: {', '.join(STAGES)})")
    stage = STAGES[name]
    if bool(item) != bool(stage.foreach):
        raise ConfigError(f"stage {run!r}: {name} is {'a foreach' if stage.foreach else 'a single'} stage")
    return stage, item or None


def stage_of(*, module: str, function: str) -> Stage:
    """The table row whose function is module:function (what a stage module's CLI runs)."""
    for stage in STAGES.values():
        if stage.target == f"{module}:{function}":
            return stage
    raise ConfigError(f"{module}:{function} is not a stage in stages.table.STAGES")
