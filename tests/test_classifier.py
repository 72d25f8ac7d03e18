import json
from importlib import resources
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from veegan_hf.classifier import CLASSIFIER_WEIGHTS, MNISTClassifier, load_mode_classifier, predict_stacked_modes
from veegan_hf.data import StackedMNIST, mnist_pixel_values, mnist_split

WEIGHTS_DIR = resources.files("veegan_hf") / "weights"


@pytest.fixture(scope="module")
def classifier() -> MNISTClassifier:
    return load_mode_classifier()


def heldout_accuracy(classifier: MNISTClassifier, image_size: int) -> float:
    images, labels = mnist_split("classifier_test")
    with torch.inference_mode():
        predictions = classifier(mnist_pixel_values(images, image_size)).argmax(dim=1)
    return (predictions == labels).float().mean().item()


def test_shipped_weights_load_small_and_without_pickle(classifier):
    assert isinstance(classifier, MNISTClassifier)
    assert not classifier.training
    assert not any(parameter.requires_grad for parameter in classifier.parameters())
    weights = WEIGHTS_DIR / CLASSIFIER_WEIGHTS
    assert len(weights.read_bytes()) < 1_000_000  # small enough to commit and ship in the wheel
    with resources.as_file(weights) as path, safe_open(path, framework="pt") as file:
        config = json.loads(file.metadata()["config"])
    assert config["channels"] == [32, 64, 128]


@pytest.mark.parametrize("image_size", [28, 32])
def test_heldout_accuracy_of_the_shipped_weights(classifier, image_size):
    accuracy = heldout_accuracy(classifier, image_size)
    assert accuracy >= 0.98, f"held-out accuracy {accuracy:.4f} at {image_size} px"


def test_reported_accuracy_matches_the_shipped_weights(classifier):
    report = json.loads((WEIGHTS_DIR / "mnist_classifier.json").read_text())
    assert report["num_train_digits"] == 2000 and report["num_test_digits"] == 500
    assert report["heldout_accuracy"] == pytest.approx(heldout_accuracy(classifier, 28), abs=1e-6)


@pytest.mark.parametrize("image_size", [28, 32])
def test_predict_stacked_modes_recovers_the_true_modes(classifier, image_size):
    dataset = StackedMNIST(*mnist_split("classifier_test"))
    pixel_values, modes = dataset.sample(2000, generator=torch.Generator().manual_seed(0), image_size=image_size)
    predicted = predict_stacked_modes(classifier, pixel_values)
    assert predicted.dtype == torch.int64 and predicted.shape == (2000,)
    assert int(predicted.min()) >= 0 and int(predicted.max()) <= 999
    assert (predicted == modes).float().mean().item() >= 0.94
    # the chunking is an implementation detail: any batch size gives the same labels
    assert torch.equal(predict_stacked_modes(classifier, pixel_values[:100], batch_size=7), predicted[:100])


def test_predict_stacked_modes_of_no_images(classifier):
    predicted = predict_stacked_modes(classifier, torch.zeros(0, 3, 28, 28))
    assert predicted.dtype == torch.int64 and predicted.shape == (0,)


@pytest.mark.parametrize("shape", [(4, 3, 28, 28), (4, 1, 30, 30), (28, 28)])
def test_classifier_rejects_a_wrong_shape(classifier, shape):
    with pytest.raises(
        ValueError, match=r"\(batch, 1, 28, 28\).*" + str(shape).replace("(", r"\(").replace(")", r"\)")
    ):
        classifier(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (4, 3, 30, 30), (3, 28, 28)])
def test_predict_stacked_modes_rejects_a_wrong_shape(classifier, shape):
    with pytest.raises(ValueError, match=r"\(N, 3, 28, 28\).*" + str(shape).replace("(", r"\(").replace(")", r"\)")):
        predict_stacked_modes(classifier, torch.zeros(shape))


def test_predict_stacked_modes_refuses_a_classifier_in_training_mode():
    with pytest.raises(ValueError, match=r"eval\(\)"):
        predict_stacked_modes(MNISTClassifier().train(), torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="batch_size"):
        predict_stacked_modes(MNISTClassifier().eval(), torch.zeros(2, 3, 28, 28), batch_size=0)


def test_predict_digits_and_recorded_accuracy():
    from veegan_hf.classifier import classifier_accuracy, load_mode_classifier, predict_digits
    from veegan_hf.data import mnist_pixel_values, mnist_split

    images, labels = mnist_split("classifier_test")
    predicted = predict_digits(load_mode_classifier(), mnist_pixel_values(images))
    accuracy = (predicted == labels).float().mean().item()
    assert accuracy == pytest.approx(classifier_accuracy(), abs=1e-6)  # the JSON states what the weights do
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        predict_digits(load_mode_classifier(), torch.zeros(2, 3, 28, 28))


def test_evaluate_mnist_model_reports_modes_and_classifier_accuracy():
    from tests.conftest import make_pipeline
    from veegan_hf.evaluation import evaluate

    result = evaluate(make_pipeline("dcgan-28-1"), "mnist", num_samples=200)
    assert 1 <= result["modes_covered"] <= 10 and result["num_modes"] == 10
    assert result["classifier_accuracy"] >= 0.98 and result["kl"] >= 0


def test_digit_legibility_ranks_real_digits_over_the_shipped_model(classifier, capsys):
    """`benchmarks/digit_legibility.py`: real digits are read with more confidence than the shipped 9,000-step digit
    model's samples, and the script prints one table row per source."""
    from benchmarks import digit_legibility
    from veegan_hf import VEEGAN
    from veegan_hf.evaluation import draw_samples

    images, _ = mnist_split("classifier_test")
    real = digit_legibility.legibility(classifier, mnist_pixel_values(images))
    shipped = Path(__file__).resolve().parents[1] / "spaces" / "veegan-mnist"
    model = digit_legibility.legibility(classifier, draw_samples(VEEGAN.from_pretrained(shipped), 500))
    assert real["mean_top_probability"] > model["mean_top_probability"] > 0.5
    assert real["kl_to_uniform"] < 0.01 and 0 <= model["confident_percent"] <= real["confident_percent"] <= 100
    assert digit_legibility.main([str(shipped), "--num_samples", "200"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and table[2].startswith("| real held-out digits | 0.8")


def test_digit_legibility_also_scores_sampling_with_d(tmp_path, capsys):
    """`--rejection_sampling 0.5`: a second row for the same model, drawn with DRS, named with its acceptance."""
    from benchmarks import digit_legibility
    from tests.conftest import make_pipeline

    make_pipeline("dcgan-28-1").save_pretrained(tmp_path / "model")
    assert digit_legibility.main([str(tmp_path / "model"), "--num_samples", "64", "--rejection_sampling", "0.5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 5 and ", DRS at 0.5" in table[4]
