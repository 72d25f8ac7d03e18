"""The reduced-discriminator image family, `architecture="metz"`: the Stacked MNIST networks of Metz et al.'s Unrolled
GAN experiment, as PacGAN's public code builds them (`fjxmlzn/PacGAN`, `stacked_MNIST_experiments/
unrolled_GAN_experiment/D=0.25G` and `D=0.5G`, `model.py`).

- G: Linear z -> 4x4x(8 * base), then stride-2 3x3 transposed convs halving the channels down to `base` at the full
  size, then a stride-1 3x3 conv to the image and tanh; BatchNorm + ReLU after every layer but the last. With
  `base_channels=8` at 28 px: 64 -> 32 -> 16 -> 8 -> 3 channels, 287,875 parameters for a 256-D z.
- D: stride-2 3x3 convs with `base`, 2 * base, 4 * base filters, each followed by BatchNorm and LeakyReLU(0.3), then one
  linear logit; no hidden fully connected layer. `base_channels=2` is "D = 1/4 G" (585 parameters), 4 is "1/2 G"
  (1,889), 8 is "G's width". The joint D of VEEGAN and ALI reads z through one linear map into the last conv stage's
  channels, added before its activation: the fewest weights that let the logit depend on z *and* x together.
- F: G's mirror, a stride-1 conv to `base` channels, stride-2 convs doubling to 8 * base at 4x4, then a linear map to
  z; LeakyReLU(0.2), no normalization (F sees data and generated images in one batch).

D's BatchNorm normalizes generated and data inputs apart (`batch_groups`), as in the reference code, which calls D
once on a generated batch and once on a data batch.
"""

import math

import torch
from torch import nn

START = 4  # every size starts (G) and ends (D, F) at 4x4, as in the reference's 28 px networks


def num_stages(image_size: int) -> int:
    """Stride-2 stages between 4x4 and the image: 28 -> 3 (4, 7, 14, 28), 32 -> 3, 64 -> 4."""
    return math.ceil(math.log2(image_size / START))


def stage_sizes(image_size: int) -> list[int]:
    """The feature sizes from the image down to 4x4, as 'SAME' stride-2 convs give them: 28 -> [28, 14, 7, 4]."""
    sizes = [image_size]
    for _ in range(num_stages(image_size)):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def reference_init(module: nn.Module) -> None:
    """The reference's initialization (`ops.py`): weights N(0, 0.02), truncated at 2 std for convs, biases 0. The
    loss surface that D starts from decides how soon a GAN collapses in this setting, so it is part of the setting."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)
        elif isinstance(layer, (nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, std=0.02)
        else:
            continue
        nn.init.zeros_(layer.bias)


class MetzGeneratorNet(nn.Module):
    """(batch, in_dim) -> (batch, num_channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, in_dim: int, image_size: int, num_channels: int, base_channels: int):
        super().__init__()
        sizes = stage_sizes(image_size)[::-1]  # coarse to fine: [4, 7, 14, 28]
        widths = [base_channels * 2 ** (len(sizes) - 1 - i) for i in range(len(sizes))]  # [64, 32, 16, 8]
        layers: list[nn.Module] = [
            nn.Linear(in_dim, widths[0] * START * START),
            nn.Unflatten(1, (widths[0], START, START)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for i in range(len(sizes) - 1):
            # out = 2 * in - 1 + output_padding: 4 -> 7 needs none, 7 -> 14 and 14 -> 28 need one
            output_padding = sizes[i + 1] - (2 * sizes[i] - 1)
            layers += [
                nn.ConvTranspose2d(widths[i], widths[i + 1], 3, 2, 1, output_padding=output_padding),
                nn.BatchNorm2d(widths[i + 1]),
                nn.ReLU(),
            ]
        layers += [nn.Conv2d(widths[-1], num_channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        reference_init(self)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net(latents)


class MetzEncoderNet(nn.Module):
    """F: (batch, num_channels, size, size) -> (batch, out_dim), G's mirror without normalization."""

    def __init__(self, image_size: int, num_channels: int, base_channels: int, out_dim: int):
        super().__init__()
        stages = num_stages(image_size)
        layers: list[nn.Module] = [nn.Conv2d(num_channels, base_channels, 3, 1, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for _ in range(stages):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2)]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * START * START, out_dim)
        reference_init(self)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.features(pixel_values)  # (batch, 8 * base, 4, 4)
        return self.head(h.flatten(1))  # (batch, out_dim)


def grouped_batch_norm(layer: nn.BatchNorm2d, h: torch.Tensor, batch_groups: int) -> torch.Tensor:
    """`layer(h)`, with each of `batch_groups` equal slices of the batch normalized by its own statistics in training
    (the running statistics are updated once per slice, as separate calls would). In eval mode, one call."""
    if batch_groups == 1 or not layer.training:
        return layer(h)
    if h.shape[0] % batch_groups:
        raise ValueError(f"batch of {h.shape[0]} does not split into batch_groups={batch_groups} equal groups.")
    return torch.cat([layer(chunk) for chunk in h.chunk(batch_groups)])


class MetzDiscriminatorNet(nn.Module):
    """D(x) or D(z, x) -> (batch,) logits: BatchNorm convs, one linear logit (plus an x-only one if asked)."""

    def __init__(
        self,
        image_size: int,
        num_channels: int,
        base_channels: int,
        latent_dim: int,
        marginal_head: bool,
    ):
        super().__init__()
        stages = num_stages(image_size)
        widths = [base_channels * 2**i for i in range(stages)]  # fine to coarse: [2, 4, 8] at D = 1/4 G
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch = num_channels
        for width in widths:
            self.convs.append(nn.Conv2d(in_ch, width, 3, 2, 1))
            self.norms.append(nn.BatchNorm2d(width))
            in_ch = width
        self.activation = nn.LeakyReLU(0.3)
        num_features = widths[-1] * START * START
        # z -> a per-channel shift of the last stage, before its activation: the logit depends on (z, x) jointly
        self.latent_path = nn.Linear(latent_dim, widths[-1]) if latent_dim > 0 else None
        self.head = nn.Linear(num_features, 1)
        self.x_head = nn.Linear(num_features, 1) if marginal_head else None
        reference_init(self)

    def forward(self, samples: torch.Tensor, latents: torch.Tensor | None, batch_groups: int) -> torch.Tensor:
        h = samples
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = grouped_batch_norm(norm, conv(h), batch_groups)  # (batch, width, size, size)
            if i < last:
                h = self.activation(h)
        h_x = self.activation(h)  # (batch, 4 * base, 4, 4): x alone
        if self.latent_path is None:
            return self.head(h_x.flatten(1)).squeeze(-1)
        if latents is None:
            raise ValueError("This discriminator is joint (latent_dim > 0): pass latents with the samples.")
        h_joint = self.activation(h + self.latent_path(latents)[:, :, None, None])  # (batch, 4 * base, 4, 4)
        logit = self.head(h_joint.flatten(1)).squeeze(-1)  # (batch,)
        if self.x_head is not None:
            logit = logit + self.x_head(h_x.flatten(1)).squeeze(-1)  # + the log p(x)/q(x) term, from x alone
        return logit


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters, as the reduced-D tables report D's size."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
