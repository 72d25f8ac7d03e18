"""Judge one new image against a model's coverage: is it covered, and can the model make it?

`CoverageIndex.build(pipe, dataset)` caches what a judgement needs: the real images' features and k-NN radii, the
features of the model's samples, and the inverter's floor (the 99th percentile of G(F(G(z))) errors). Each
`judge(image)` then costs one feature pass, one F and one G pass, and a distance to the cached features.
"""

from dataclasses import dataclass
from typing import Any

import torch

from ..evaluation import draw_samples
from .features import extract, resolve_extractor
from .measures import FLOOR_PERCENTILE, reconstruct, reconstruction_errors
from .neighbours import _distances, knn_radii
from .sources import resolve_audit_data


@dataclass
class CoverageIndex:
    """The cached features of one model and one dataset (see the module docstring)."""

    pipe: Any
    extractor: Any
    extractor_name: str
    real_features: torch.Tensor  # (N, dim)
    real_radii: torch.Tensor  # (N,)
    generated: torch.Tensor  # (M, ...) in the model's space
    generated_features: torch.Tensor  # (M, dim)
    floor: float
    nearest_k: int

    @classmethod
    def build(
        cls,
        pipe: Any,
        dataset: Any = "mnist",
        feature_extractor: Any = "classifier",
        num_samples: int = 2500,
        nearest_k: int = 5,
        seed: int = 0,
    ) -> "CoverageIndex":
        data = resolve_audit_data(dataset, pipe, seed, num_samples, None)
        name, extractor = resolve_extractor(feature_extractor, pipe.is_image_model, pipe.generator.sample_shape[0])
        real_features = extract(extractor, data.real)
        generated = draw_samples(pipe, num_samples, seed=seed)
        floor = torch.quantile(
            reconstruction_errors(generated, reconstruct(pipe, generated), pipe.is_image_model).double(),
            FLOOR_PERCENTILE,
        )
        return cls(
            pipe,
            extractor,
            name,
            real_features,
            knn_radii(real_features, nearest_k),
            generated,
            extract(extractor, generated),
            float(floor),
            nearest_k,
        )

    @torch.no_grad()
    def judge(self, samples: torch.Tensor) -> list[dict[str, Any]]:
        """For `(B, ...)` samples in the model's space: per sample its reconstruction G(F(x)) and error, the nearest
        real image's k-NN radius as the yardstick, the nearest generated sample, the coverage ratio, and the verdict."""
        features = extract(self.extractor, samples)  # (B, dim)
        to_real = _distances(features, self.real_features)  # (B, N)
        # the ball of the nearest real image stands in for x's own k-NN ball: x is not among the audited images
        radius = self.real_radii[to_real.argmin(dim=1)]  # (B,)
        nearest_distance, nearest_index = _distances(features, self.generated_features).min(dim=1)  # (B,)
        reconstructed = reconstruct(self.pipe, samples)
        errors = reconstruction_errors(samples, reconstructed, self.pipe.is_image_model)
        results = []
        for i in range(samples.shape[0]):
            ratio = float(nearest_distance[i] / radius[i]) if radius[i] > 0 else float("inf")
            covered, error = ratio <= 1.0, float(errors[i])
            results.append(
                {
                    "coverage_ratio": ratio,
                    "covered": covered,
                    "reconstruction_mse": error,
                    "floor": self.floor,
                    "makeable": covered or error <= self.floor,
                    "nearest_generated_index": int(nearest_index[i]),
                    "reconstruction": reconstructed[i],
                    "nearest_generated": self.generated[nearest_index[i]],
                }
            )
        return results
