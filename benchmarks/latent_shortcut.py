"""Does a joint discriminator judge the image, or only the code? A diagnostic for VEEGAN and ALI models.

    python benchmarks/latent_shortcut.py benchmarks/results/models/veegan_d4 [MORE_MODELS ...]

A joint D scores pairs: generated (z, G(z)) with z ~ N(0, I), and data (F(x) + eps, x). If F's codes of real images
drift away from N(0, I), D can tell the two kinds of pair apart from the code alone. G's adversarial term then
carries nothing about images, and only the reconstruction term trains G. The script feeds a saved model's D four
kinds of batch, in training mode as the loop does (each half normalized on its own):

- as trained: generated pairs against data pairs;
- codes swapped: each image with the other kind's code, (F(x) + eps, G(z)) against (z, x);
- images swapped: each code with the other kind's image, (z, x) against (F(x) + eps, G(z));
- codes alike: every code drawn from N(0, I), so only the images differ.

For each it reports the share of the first half that D calls generated and of the second half that it calls data
(so 1.0 / 1.0 is a perfect verdict on the halves as listed), and F(x)'s distance from N(0, I). A D that reads the code
alone gets the "as trained" and "images swapped" batches right, calls the "codes swapped" ones exactly backwards, and
calls every pair of "codes alike" generated (1 / 0). Writes `benchmarks/results/latent_shortcut.{json,md}`.
"""

import argparse
import sys
from pathlib import Path

import torch

from veegan_hf.provenance import REPO, git_commit, write_results


def _verdicts(discriminator, first: tuple, second: tuple) -> tuple[float, float]:
    """Share of `first` called generated (logit > 0, D large on generated pairs) and of `second` called data."""
    num = first[0].shape[0]
    logits = discriminator(torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]]), batch_groups=2)
    return (logits[:num] > 0).float().mean().item(), (logits[num:] <= 0).float().mean().item()


@torch.no_grad()
def diagnose(model_dir: Path, num: int = 1024, seed: int = 0) -> dict:
    """The four verdicts and F(x)'s statistics for one saved model with a joint discriminator."""
    from veegan_hf import VEEGAN
    from veegan_hf.data import StackedMNIST

    pipe = VEEGAN.from_pretrained(model_dir)
    if pipe.discriminator is None or not pipe.discriminator.config.latent_dim:
        raise SystemExit(f"{model_dir}: no joint discriminator saved (export it with its D; see export_table_model.py)")
    generator, reconstructor = pipe.generator.eval(), pipe.reconstructor.eval()
    discriminator = pipe.discriminator.train()  # batch statistics per half, as in training; nothing is updated
    torch.manual_seed(seed)
    real, _ = StackedMNIST.from_split("train").sample(num, generator=torch.Generator().manual_seed(seed), image_size=28)
    latents = torch.randn(num, generator.config.latent_dim)  # (num, latent_dim)
    fake = generator(latents)  # (num, 3, 28, 28)
    codes = reconstructor(real)  # (num, latent_dim): F(x)
    noisy = codes + reconstructor.config.noise_std * torch.randn_like(codes)  # F(x) + eps, the data pairs' codes
    batches = {
        "as_trained": ((fake, latents), (real, noisy)),
        "codes_swapped": ((fake, noisy), (real, latents)),
        "images_swapped": ((real, latents), (fake, noisy)),
        "codes_alike": ((fake, latents), (real, torch.randn_like(latents))),
    }
    verdicts = {name: _verdicts(discriminator, *halves) for name, halves in batches.items()}
    return {
        "model": str(model_dir),
        "num_pairs": num,
        "verdicts": {name: {"first_right": a, "second_right": b} for name, (a, b) in verdicts.items()},
        "f_of_x_mean_abs": codes.mean(0).abs().mean().item(),  # N(0, I): 0
        "f_of_x_std": codes.std(0).mean().item(),  # N(0, I): 1
    }


def to_markdown(results: list[dict], commit: str, command: str) -> str:
    lines = [
        "| model | as trained | codes swapped | images swapped | codes alike | F(x): mean abs mean / mean std |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [
            f"{v['first_right']:.2f} / {v['second_right']:.2f}"
            for v in (r["verdicts"][k] for k in ("as_trained", "codes_swapped", "images_swapped", "codes_alike"))
        ]
        lines.append(
            f"| `{r['model']}` | " + " | ".join(cells) + f" | {r['f_of_x_mean_abs']:.2f} / {r['f_of_x_std']:.2f} |"
        )
    note = (
        "\nEach cell: the share of the first half D gets right / of the second half, for the halves as named in "
        "`latent_shortcut.py` (generated first). A D that reads the code alone scores 1 / 1, 0 / 0, 1 / 1 and "
        "1 / 0 in the four columns; one that reads the image alone, 1 / 1, 1 / 1, 0 / 0 and 1 / 1. Codes drawn from "
        f"N(0, I) have 0 / 1 in the last column. {results[0]['num_pairs']:,} pairs per half. Commit `{commit}`. "
        f"Command: `{command}`."
    )
    return "\n".join(lines) + "\n" + note + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="saved pipelines with a joint discriminator")
    parser.add_argument("--num", type=int, default=1024, help="pairs per half")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "latent_shortcut")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = [diagnose(model, args.num) for model in args.models]
    commit = git_commit()
    command = "python benchmarks/latent_shortcut.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"commit": commit, "command": command, "results": results}
    write_results(args.output.parent, args.output.name, payload, to_markdown(results, commit, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
