"""The Hub model card: metadata via `huggingface_hub.ModelCardData`, body from `model_cards/veegan_model_card.md`."""

import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

if TYPE_CHECKING:
    from .pipeline_veegan import VEEGAN

TEMPLATE_NAME = "veegan_model_card.md"
# metric key -> (display name, Hub metric type); keys follow metrics.py
METRIC_NAMES = {
    "modes_captured": ("Modes captured", "modes_captured"),
    "hq_percent": ("High-quality samples (%)", "hq_percent"),
    "reverse_kl": ("Reverse KL to uniform modes", "reverse_kl"),
    "modes_covered": ("Modes covered", "modes_covered"),
    "kl": ("KL(p_gen || p_data)", "kl"),
    "reconstruction_mse": ("Reconstruction MSE G(F(x))", "mse"),
    "ivom": ("IvOM (MSE after optimization)", "mse"),
    "classifier_accuracy": ("Mode classifier held-out accuracy", "accuracy"),
}


def _template() -> Template:
    """The card body: shipped inside the wheel, or read from the repository's model_cards/ in a source checkout."""
    packaged = resources.files("veegan_hf").joinpath(TEMPLATE_NAME)
    if packaged.is_file():
        return Template(packaged.read_text(encoding="utf-8"))
    source = Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE_NAME
    return Template(source.read_text(encoding="utf-8"))


def create_model_card(
    pipeline: "VEEGAN",
    repo_id: str | None = None,
    save_directory: str | Path | None = None,
    dataset_name: str | None = None,
    metrics: dict[str, float] | None = None,
    training_config: dict[str, Any] | None = None,
) -> ModelCard:
    r"""
    Builds the model card of a `VEEGAN` pipeline.

    Args:
        pipeline (`VEEGAN`): the model to describe; its network configs fill the architecture table.
        repo_id (`str`, *optional*): the Hub id shown in the usage snippet; a placeholder when unknown.
        save_directory (`str` or `Path`, *optional*): names the model in the card when there is no `repo_id`.
        dataset_name (`str`, *optional*): the training data, recorded under `datasets` when it is a Hub id.
        metrics (`dict[str, float]`, *optional*): measured metrics; they fill the evaluation table and the model-index.
        training_config (`dict`, *optional*): the resolved training options, shown in a collapsible section.

    Returns:
        `huggingface_hub.ModelCard`: YAML metadata (library_name, tags, datasets, model-index) and a Markdown body.
    """
    is_image = pipeline.is_image_model
    task = "unconditional-image-generation" if is_image else "tabular-to-tabular"
    model_name = (repo_id or "").split("/")[-1] or (Path(save_directory).name if save_directory else "veegan")
    metrics = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    is_hub_dataset = bool(dataset_name) and "/" in dataset_name and not Path(dataset_name).exists()
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_name or "unknown",
            dataset_name=dataset_name or "unknown",
            metric_type=METRIC_NAMES.get(key, (key, key))[1],
            metric_name=METRIC_NAMES.get(key, (key, key))[0],
            metric_value=value,
        )
        for key, value in metrics.items()
    ]
    card_data = ModelCardData(
        library_name="veegan-hf",
        license="mit",
        tags=["veegan", "gan", task, "mode-collapse", "diffusers"],
        pipeline_tag="unconditional-image-generation" if is_image else None,
        datasets=[dataset_name] if is_hub_dataset else None,
        model_name=model_name,
        eval_results=eval_results or None,
        training_dataset=dataset_name,  # also local and built-in names, which `datasets` may not list
    )
    if metrics:
        rows = "\n".join(f"| {METRIC_NAMES.get(k, (k,))[0]} | {v:.6g} |" for k, v in metrics.items())
        metrics_table = f"| metric | value |\n|---|---|\n{rows}"
    else:
        metrics_table = "No evaluation was recorded for this model."
    architecture_rows = "\n".join(
        f"| {name} | `{json.dumps({k: v for k, v in module.config.items() if not k.startswith('_')})}` |"
        for name, module in pipeline.components.items()
        if module is not None
    )
    training_section = ""
    if training_config:
        options = json.dumps(training_config, indent=2, sort_keys=True, default=str)
        training_section = (
            "## Training\n\n<details><summary>Resolved training options</summary>\n\n"
            f"```json\n{options}\n```\n</details>"
        )
    g = pipeline.generator.config
    body = _template().substitute(
        title=model_name,
        kind=f"{g.image_size}x{g.image_size} image model" if is_image else f"{g.data_dim}-D vector model",
        dataset_phrase=f" on `{dataset_name}`" if dataset_name else "",
        repo_id=repo_id or "path/to/this/model",
        output_type_arg="" if is_image else ', output_type="pt"',
        usage_tail=(
            'out.images[0].save("sample.png")\nz = pipe.encode(out.images)          # image -> latent, one pass\n'
            "x_hat = pipe.reconstruct(out.images)  # G(F(x))\nz_star = pipe.invert(out.images, num_steps=200)"
            if is_image
            else "samples = out.samples                 # (16, data_dim)\nz = pipe.encode(samples)"
        ),
        metrics_table=metrics_table,
        architecture_rows=architecture_rows,
        training_section=training_section,
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def read_model_card_metadata(path: Path) -> dict[str, Any]:
    """The dataset and metrics recorded in an existing card, so that a re-save or a push keeps them."""
    if not path.is_file():
        return {}
    try:
        data = ModelCard.load(path).data
    except Exception:  # a hand-edited card that no longer parses must not block loading the weights
        return {}
    metadata: dict[str, Any] = {}
    dataset_name = data.get("training_dataset") or (data.datasets or [None])[0]
    if dataset_name:
        metadata["dataset_name"] = dataset_name
    if data.eval_results:
        by_name = {display: key for key, (display, _) in METRIC_NAMES.items()}
        metadata["metrics"] = {by_name.get(r.metric_name, r.metric_name): r.metric_value for r in data.eval_results}
    return metadata
