"""The Hub model card: metadata via `huggingface_hub.ModelCardData`, body from `model_cards/veegan_model_card.md`.
It never holds a local path: a local folder is named by its last component, a built-in dataset by its description."""

import json
import math
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .card_datasets import DatasetInfo, describe_dataset
from .card_scrub import scrub_option, scrub_text
from .data import BUILTIN_DATASETS
from .plotting import GRID_SAMPLES, SAMPLES_NAME, SCATTER_SAMPLES, is_2d_mixture

if TYPE_CHECKING:
    from .pipeline_veegan import VEEGAN

TEMPLATE_NAME = "veegan_model_card.md"
# metric key -> (display name, Hub metric type); keys follow metrics.py and evaluation.py
METRIC_NAMES = {
    "modes_captured": ("Modes captured", "modes_captured"),
    "hq_percent": ("High-quality samples (%)", "hq_percent"),
    "reverse_kl": ("Reverse KL to uniform modes", "reverse_kl"),
    "modes_covered": ("Modes covered", "modes_covered"),
    "kl": ("KL(p_gen || uniform over modes)", "kl"),
    "reconstruction_mse": ("Reconstruction MSE G(F(x)), one pass", "mse"),
    "ivom": ("IvOM: best of F(x) and random starts, after Adam steps (MSE)", "mse"),
    "ivom_from_encoder": ("IvOM: Adam steps started from F(x) only (MSE)", "mse"),
    "classifier_accuracy": ("Mode classifier held-out accuracy", "accuracy"),
    "mode_share_min": ("Smallest mode's share of the samples (of the HQ ones for a mixture)", "share"),
    "mode_share_max": ("Largest mode's share of the samples (of the HQ ones for a mixture)", "share"),
}
# display names of earlier versions, read back to their keys
LEGACY_METRIC_NAMES = {
    "KL(p_gen || p_data)": "kl",
    "IvOM (MSE after optimization)": "ivom",
    "IvOM from the encoder's code alone (MSE)": "ivom_from_encoder",
    "Reconstruction MSE G(F(x))": "reconstruction_mse",
}
# what scored the model, not a property of it: shown under the table, never in the model-index as a result
SCORER_KEYS = frozenset({"classifier_accuracy"})
# mode counts: their display name says "of how many", taken from `num_modes` or the built-in dataset
MODE_METRICS = ("modes_captured", "modes_covered")
# what the metric functions return beside the metrics: sample counts and settings, never listed as metrics
BOOKKEEPING_KEYS = frozenset(
    {"num_samples", "num_modes", "ivom_num_restarts", "ivom_num_steps", "ivom_learning_rate", "ivom_num_images"}
)
_OUT_OF = re.compile(r"\s*\(of ([\d,]+)\)$")  # " (of 1000)" at the end of a mode metric's display name
# the card's own metadata key for the training data (the Hub's `datasets` key lists Hub dataset ids only)
DATASET_KEY = "veegan_dataset"
OBJECTIVE_KEY = "veegan_objective"  # written for the baselines only: a card without it describes VEEGAN
LEGACY_DATASET_KEY = "training_dataset"  # written by earlier versions, sometimes with a local path in it


# ---------------------------------------------------------------------------------------------------- metrics


def _num_modes(metrics: dict[str, Any], dataset: DatasetInfo | None) -> int | None:
    """How many modes the mode metrics count: the recorded `num_modes`, else the built-in dataset's."""
    recorded = metrics.get("num_modes")
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and math.isfinite(recorded):
        return int(recorded)
    if dataset is not None and dataset.source == "builtin":
        return BUILTIN_DATASETS[dataset.name].num_modes
    return None


def metric_display_name(key: str, num_modes: int | None = None) -> str:
    """The card's name of metric `key`, e.g. "Modes covered (of 10)" for a digit model."""
    name = METRIC_NAMES.get(key, (key,))[0]
    return f"{name} (of {num_modes})" if key in MODE_METRICS and num_modes else name


def _card_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """The numbers worth listing: bookkeeping keys, namespaced training stats ("train/...") and non-numbers dropped."""
    return {
        key: float(value)
        for key, value in (metrics or {}).items()
        if key not in BOOKKEEPING_KEYS
        and "/" not in key
        and isinstance(value, (int, float))
        and not isinstance(value, bool)  # a flag is not a measurement
    }


# ---------------------------------------------------------------------------------------------------- the card


def _template() -> Template:
    """The card body: shipped inside the wheel, or read from the repository's model_cards/ in a source checkout."""
    packaged = resources.files("veegan_hf").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Template(packaged.read_text(encoding="utf-8"))
    source = Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE_NAME
    return Template(source.read_text(encoding="utf-8"))


def _dataset_record(dataset: DatasetInfo) -> dict[str, str]:
    """The `veegan_dataset` metadata: where the data came from and its name, which the loader reads back."""
    record = {"source": dataset.source, "name": dataset.name}
    if dataset.description:
        record["description"] = dataset.description
    return record


# objective -> (its name in a title, what the card says it is). A baseline trained by the package keeps VEEGAN's
# three networks, so its card must say which loss trained G and what its F is, or a reader takes it for VEEGAN.
_OBJECTIVE_INTROS = {
    "veegan": (
        "VEEGAN",
        "A [VEEGAN](https://arxiv.org/abs/1705.07761) {kind} trained with `veegan-hf`{dataset}. VEEGAN is a GAN with "
        "a\nreconstructor network F that maps data back to its latent code: the generator is trained on the "
        "adversarial loss plus\n‖z − F(G(z))‖², an autoencoder loss on the noise, which resists mode collapse and "
        "gives one-pass inversion.",
    ),
    "ali": (
        "ALI",
        "An [ALI / BiGAN](https://arxiv.org/abs/1606.00704) {kind} trained with `veegan-hf`{dataset}, a baseline of "
        "VEEGAN on the\nsame networks: a joint discriminator D(z, x) trains the generator and the encoder F "
        "adversarially, with no reconstruction\nloss. F maps data to latents in one pass, as VEEGAN's does.",
    ),
}
_BASELINE_NAMES = {"gan": "DCGAN (non-saturating GAN)", "unrolled": "Unrolled GAN", "pacgan": "PacGAN"}
_BASELINE_INTRO = (
    "A {name} {kind} trained with `veegan-hf`{dataset}, a baseline of VEEGAN on the same networks: its "
    "generator is\ntrained on the adversarial loss alone. Its reconstructor F was fitted beside it on detached "
    "samples (‖z − F(G(z))‖²,\nno gradient to G), so that `encode`, `reconstruct` and `invert` work as for VEEGAN "
    "without F ever shaping G."
)


def _objective(training_config: dict[str, Any] | None, objective: str | None) -> str:
    """The objective that trained the model: the run record's `objective`, else the one a re-saved card recorded,
    else VEEGAN."""
    return str((training_config or {}).get("objective") or objective or "veegan")


def _intro(objective: str, kind: str, dataset_phrase: str) -> str:
    if objective in _OBJECTIVE_INTROS:
        return _OBJECTIVE_INTROS[objective][1].format(kind=kind, dataset=dataset_phrase)
    name = _BASELINE_NAMES.get(objective, objective)
    return _BASELINE_INTRO.format(name=name, kind=kind, dataset=dataset_phrase)


def _title(repo_id: str | None, dataset: DatasetInfo | None, kind: str, objective: str = "veegan") -> str:
    """ "veegan-ring" or "VEEGAN: ring-model" from a repo id, else "VEEGAN on MNIST digits" (or the baseline's name),
    else the model kind."""
    repo_name = (repo_id or "").strip("/").split("/")[-1]
    if repo_name:
        # a repo called veegan-* already says what it is; "VEEGAN: veegan-ring" would say it twice
        return repo_name if "veegan" in repo_name.lower() else f"VEEGAN: {repo_name}"
    method = _OBJECTIVE_INTROS[objective][0] if objective in _OBJECTIVE_INTROS else _BASELINE_NAMES.get(objective)
    method = method or objective
    if dataset is not None:
        return f"{method} on {dataset.short}"
    return f"{method} {kind}"


def create_model_card(
    pipeline: "VEEGAN",
    repo_id: str | None = None,
    save_directory: str | Path | None = None,
    dataset_name: str | None = None,
    metrics: dict[str, float] | None = None,
    training_config: dict[str, Any] | None = None,
    objective: str | None = None,
) -> ModelCard:
    r"""
    Builds the model card of a `VEEGAN` pipeline.

    Args:
        pipeline (`VEEGAN`): the model to describe; its network configs fill the architecture table.
        repo_id (`str`, *optional*): the Hub id, shown in the title and the usage snippet; a placeholder when unknown.
        save_directory (`str` or `Path`, *optional*): the folder the card is written to; its `samples.png`, when
            present, is embedded in the card. Its path is never written into the card.
        dataset_name (`str`, *optional*): the training data: a built-in dataset, a Hub id (also listed under
            `datasets`) or a local folder (shown by its last path component only).
        metrics (`dict[str, float]`, *optional*): measured metrics; they fill the evaluation table and the
            model-index. `num_modes` says what the mode counts are out of; it and the other bookkeeping keys
            (`BOOKKEEPING_KEYS`) are not listed as metrics.
        training_config (`dict`, *optional*): the resolved training options, shown in a collapsible section with
            every local path reduced to its last component. Its `objective` names the method in the title and intro.
        objective (`str`, *optional*): the objective when there is no `training_config` (a re-saved card's
            `veegan_objective`); VEEGAN when neither says.

    Returns:
        `huggingface_hub.ModelCard`: YAML metadata (library_name, tags, datasets, model-index) and a Markdown body.
    """
    is_image = pipeline.is_image_model
    g = pipeline.generator.config
    kind = f"{g.image_size}x{g.image_size} image model" if is_image else f"{g.data_dim}-D vector model"
    dataset = describe_dataset(dataset_name)
    objective = _objective(training_config, objective)
    title = _title(repo_id, dataset, kind, objective)
    num_modes = _num_modes(metrics or {}, dataset)
    shown = _card_metrics(metrics)
    # vectors have no Hub pipeline task: claiming one (e.g. tabular-to-tabular) would file the model under it
    task = "unconditional-image-generation" if is_image else "unconditional-generation"
    card_data = _card_data(is_image, title, dataset, objective, _eval_results(shown, num_modes, dataset, task))
    body = _template().substitute(
        title=title,
        intro=_intro(objective, kind, f" on {dataset.phrase}" if dataset is not None else ""),
        samples_section=_samples_section(save_directory, is_image, dataset_name),
        repo_id=repo_id or "path/to/this/model",
        output_type_arg="" if is_image else ', output_type="pt"',
        usage_tail=(
            'out.images[0].save("sample.png")\nz = pipe.encode(out.images)          # image -> latent, one pass\n'
            "x_hat = pipe.reconstruct(out.images)  # G(F(x))\nz_star = pipe.invert(out.images, num_steps=200)"
            if is_image
            else "samples = out.samples                 # (16, data_dim)\nz = pipe.encode(samples)"
        ),
        metrics_table=_metrics_table(shown, num_modes),
        architecture_rows="\n".join(
            f"| {name} | `{json.dumps({k: v for k, v in module.config.items() if not k.startswith('_')})}` |"
            for name, module in pipeline.components.items()
            if module is not None
        ),
        training_section=_training_section(training_config),
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def _card_data(
    is_image: bool, title: str, dataset: DatasetInfo | None, objective: str, eval_results: list | None
) -> ModelCardData:
    """The card's YAML metadata: library, tags, task, datasets and the model-index."""
    tags = ["veegan", "gan", "mode-collapse", "diffusers"]
    tags += ["unconditional-image-generation"] if is_image else ["unconditional-generation", "synthetic-data"]
    return ModelCardData(
        library_name="veegan-hf",
        license="mit",
        tags=tags,
        pipeline_tag="unconditional-image-generation" if is_image else None,
        datasets=dataset.hub_datasets if dataset is not None else None,
        model_name=title,
        eval_results=eval_results or None,
        **({DATASET_KEY: _dataset_record(dataset)} if dataset is not None else {}),
        **({OBJECTIVE_KEY: objective} if objective != "veegan" else {}),
    )


def _eval_results(
    shown: dict[str, float], num_modes: int | None, dataset: DatasetInfo | None, task: str
) -> list[EvalResult]:
    """The model-index: the model's own measured metrics, finite ones only (the Hub wants numbers), never what
    scored them."""
    return [
        EvalResult(
            task_type=task,
            dataset_type=dataset.name if dataset is not None else "unknown",
            dataset_name=dataset.short if dataset is not None else "unknown",
            metric_type=METRIC_NAMES.get(key, (key, key))[1],
            metric_name=metric_display_name(key, num_modes),
            metric_value=value,
        )
        for key, value in shown.items()
        if math.isfinite(value) and key not in SCORER_KEYS
    ]


def _metrics_table(shown: dict[str, float], num_modes: int | None) -> str:
    if not shown:
        return "No evaluation was recorded for this model."
    rows = "\n".join(
        f"| {metric_display_name(k, num_modes)} | {v:.6g} |" for k, v in shown.items() if k not in SCORER_KEYS
    )
    table = f"| metric | value |\n|---|---|\n{rows}"
    if "classifier_accuracy" in shown:
        table += (
            f"\n\nModes are the digits the package's shipped classifier reads (held-out accuracy "
            f"{100 * shown['classifier_accuracy']:.1f}%; one per channel for stacked digits); KL compares the "
            "samples' mode histogram with the uniform one."
        )
    return table


def _training_section(training_config: dict[str, Any] | None) -> str:
    """What the run did (`_training_run`), then every resolved option with local paths reduced to their names."""
    if not training_config:
        return ""
    scrubbed = {key: scrub_option(str(key), value) for key, value in training_config.items()}
    options = json.dumps(scrubbed, indent=2, sort_keys=True, default=lambda v: scrub_text(str(v)))
    return (
        f"## Training\n\n{_training_run(training_config)}<details><summary>Resolved training options</summary>"
        f"\n\n```json\n{options}\n```\n</details>"
    )


def _samples_section(save_directory: str | Path | None, is_image: bool, dataset_name: str | None) -> str:
    if save_directory is None or not (Path(save_directory) / SAMPLES_NAME).is_file():
        return ""
    what = (
        f"{GRID_SAMPLES} samples, seed 0"
        if is_image
        else f"{SCATTER_SAMPLES:,} samples, seed 0"
        + (" (red crosses: the true modes)" if is_2d_mixture(dataset_name) else "")
    )
    return f"![samples]({SAMPLES_NAME})\n\n*{what}.*\n\n"


def _training_run(record: dict[str, Any]) -> str:
    """What the run did, beside what it was asked to do: steps run, why it stopped, wall time, training images, and
    each launch (segment) of a resumed run."""
    run = record.get("run")
    if not isinstance(run, dict):
        return ""
    minutes, seconds = divmod(round(float(run.get("wall_seconds", 0))), 60)
    images = run.get("num_training_images")
    rows = [
        f"| steps | {run.get('steps', '?'):,} of {run.get('max_train_steps', '?'):,} ({run.get('stop_reason', '?')}) |",
        f"| training wall time | {minutes} min {seconds} s (the last launch) |",
        f"| training images | {f'{images:,}' if images else 'fresh draws every step'} |",
    ]
    if run.get("skipped_images"):
        rows.append(f"| undecodable images skipped | {run['skipped_images']:,} |")
    text = "| | |\n|---|---|\n" + "\n".join(rows) + "\n\n"
    segments = record.get("segments") or []
    if len(segments) > 1 or (segments and segments[0].get("from_step")):
        text += "Trained in launches (each resume is one):\n\n"
        for i, part in enumerate(segments, 1):
            data, command = scrub_option("dataset_name", part.get("data")), scrub_text(str(part.get("command")))
            commit = str(part.get("commit") or "unknown")[:12]
            steps = f"{part.get('from_step')}–{part.get('to_step')}"
            text += f"{i}. steps {steps} on `{data}`, commit `{commit}`: `{command}`\n"
        text += "\n"
    return text


def read_model_card_metadata(path: Path) -> dict[str, Any]:
    """The dataset, metrics and (for a baseline) objective recorded in an existing card, so that a re-save or a push
    keeps them.

    Reads the cards of this version (`veegan_dataset`, then `datasets`) and of earlier ones (`training_dataset`).
    Metric names map back to their keys, with any "(of N)" suffix removed; N comes back as `num_modes` only when
    the dataset does not already say it (a built-in dataset knows its modes).
    """
    if not path.is_file():
        return {}
    try:
        data = ModelCard.load(path).data
    except Exception:  # a hand-edited card that no longer parses must not block loading the weights
        return {}
    metadata: dict[str, Any] = {}
    dataset_name = None
    recorded = data.get(DATASET_KEY)
    if isinstance(recorded, dict) and isinstance(recorded.get("name"), str) and recorded["name"]:
        source = recorded.get("source")
        dataset_name = DatasetInfo(source if isinstance(source, str) else "named", recorded["name"]).dataset_name
    dataset_name = dataset_name or data.get(LEGACY_DATASET_KEY) or (data.datasets or [None])[0]
    if dataset_name:
        metadata["dataset_name"] = dataset_name
    if isinstance(data.get(OBJECTIVE_KEY), str):
        metadata["objective"] = data.get(OBJECTIVE_KEY)
    if data.eval_results:
        by_name = {**LEGACY_METRIC_NAMES, **{display: key for key, (display, _) in METRIC_NAMES.items()}}
        metrics: dict[str, Any] = {}
        out_of = None
        for result in data.eval_results:
            name = result.metric_name or result.metric_type
            match = _OUT_OF.search(name)
            if match:
                name, out_of = name[: match.start()], int(match.group(1).replace(",", ""))
            metrics[by_name.get(name, name)] = result.metric_value
        if out_of is not None and str(dataset_name) not in BUILTIN_DATASETS:
            metrics["num_modes"] = out_of
        metadata["metrics"] = metrics
    return metadata
