"""Table 2's scoring protocol, shared by both settings (`table2.py`, `table2_reduced_d.py`): one training run and its
scores (modes and KL from 26,000 samples, IvOM and the one-pass G(F(x)) error on 64 held-out stacked images), and the
data row of real stacked digits."""

import os
import time
from typing import TYPE_CHECKING

from veegan_hf.benchmarking.runs import save_record, train_run
from veegan_hf.provenance import device_name, one_thread

if TYPE_CHECKING:
    import torch

DATASET = "stacked_mnist"

# The inversion protocol: the same images, starts and Adam budget for every method and seed.
IVOM_BUDGET = {"num_images": 64, "num_restarts": 3, "num_steps": 200, "learning_rate": 0.05}
IVOM_DATA_SEED = 0  # draws the held-out stacked images
IVOM_START_SEED = 0  # draws the random restarts
NUM_EVAL_SAMPLES = 26000  # the paper's count
DATA_ROW_SEED = 0  # draws the real stacked digits of the data row


def held_out_images(num_images: int, image_size: int) -> "torch.Tensor":
    """`(num_images, 3, image_size, image_size)` stacked images in [-1, 1] from digits no GAN trained on."""
    import torch

    from veegan_hf.data import StackedMNIST

    dataset = StackedMNIST.from_split("classifier_test")  # disjoint from the GANs' "train" digits
    generator = torch.Generator().manual_seed(IVOM_DATA_SEED)
    pixel_values, _ = dataset.sample(num_images, generator=generator, image_size=image_size)
    return pixel_values


def data_row(num_samples: int) -> dict:
    """Real stacked triples of the training digits, scored like a generator: the ceiling of the table."""
    import torch

    from veegan_hf.classifier import classifier_accuracy, load_mode_classifier, predict_stacked_modes
    from veegan_hf.data import StackedMNIST
    from veegan_hf.metrics import stacked_mnist_metrics

    generator = torch.Generator().manual_seed(DATA_ROW_SEED)
    pixel_values, _ = StackedMNIST.from_split("train").sample(num_samples, generator=generator, image_size=28)
    modes = predict_stacked_modes(load_mode_classifier(), pixel_values)  # the classifier's labels, errors included
    return {**stacked_mnist_metrics(modes), "classifier_accuracy": classifier_accuracy()}


def run_one(job: dict) -> dict:
    """One training run in a pool worker (table1's), then the mode metrics, the inversion metrics and the grid."""
    if time.time() > job["start_by"]:  # the queue reached this run too late to finish it in the time given
        return {**job, "skipped": True}
    import torch

    from veegan_hf import VEEGAN
    from veegan_hf.evaluation import draw_samples, evaluate, inversion_metrics
    from veegan_hf.plotting import GRID_COLUMNS, GRID_SAMPLES, samples_picture

    cap = []
    if job["train_until"] is not None:  # the run's training ends by the table's deadline, whenever it started
        cap = ["--max_train_seconds", str(max(1.0, job["train_until"] - time.time()))]
    # trains with --eval_at_end false: the scoring below replaces train.py's own
    run = {**train_run({**job, "overrides": [*job["overrides"], *cap]}), "overrides": job["overrides"]}
    start = time.perf_counter()
    pipe = VEEGAN.from_pretrained(job["output_dir"]).to(job["device"])  # the EMA generator when EMA was on
    metrics = {**run["metrics"], **evaluate(pipe, DATASET, num_samples=job["num_eval_samples"], seed=0)}
    metrics["discriminator_parameters"] = sum(p.numel() for p in pipe.discriminator.parameters())
    budget = job["ivom_budget"]
    images = held_out_images(budget["num_images"], pipe.generator.config.image_size)
    metrics.update(
        inversion_metrics(
            pipe,
            images,
            num_restarts=budget["num_restarts"],
            num_steps=budget["num_steps"],
            learning_rate=budget["learning_rate"],
            seed=IVOM_START_SEED,
        )
    )
    if job["figure"]:  # here, not in the parent: the parent then never pays for importing torch and diffusers
        samples_picture(draw_samples(pipe, GRID_SAMPLES, seed=0), num_columns=GRID_COLUMNS).save(job["figure"])
    eval_seconds = round(time.perf_counter() - start, 1)
    run = {
        **run,
        "torch": torch.__version__,
        "device_name": device_name(job["device"]),
        "metrics": metrics,
        "train_seconds": run["wall_seconds"],
        "eval_seconds": eval_seconds,
        "wall_seconds": round(run["wall_seconds"] + eval_seconds, 1),
    }
    return save_record(run)  # a rerun with the same --work_dir at the same commit reuses it


def _worker_init(device: str) -> None:
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # Accelerate would otherwise pick a GPU
    one_thread()
