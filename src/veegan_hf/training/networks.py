"""The three networks as a resolved config builds them, and the generator's exponential moving average."""

import copy

import torch
from torch import nn

from ..modeling_veegan import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor
from ..objectives import OBJECTIVES
from .config import TrainingConfig


def build_networks(config: TrainingConfig) -> tuple[VEEGANGenerator, VEEGANReconstructor, VEEGANDiscriminator]:
    """G, F and D of a resolved config (`sources.resolve_data`): the same networks for every objective, except that D
    judges (z, x) pairs only for a joint objective, and packs as many samples as the objective's pack option says."""
    spec = config.builtin_spec
    shape = dict(
        architecture=config.architecture,
        latent_dim=config.latent_dim,
        data_dim=spec.data_dim if spec is not None else None,
        image_size=config.resolution,
        num_channels=config.num_channels,
        base_channels=config.base_channels,
    )
    generator = VEEGANGenerator(
        **shape,
        hidden_dim=config.hidden_dim,
        num_hidden_layers=config.num_hidden_layers,
        extra_noise_dim=config.extra_noise_dim,
        activation=config.activation,
        batch_norm=config.generator_batch_norm,
    )
    reconstructor = VEEGANReconstructor(
        **{**shape, "base_channels": config.reconstructor_base_channels or config.base_channels},
        hidden_dim=config.hidden_dim,
        num_hidden_layers=config.num_hidden_layers,
        noise_std=config.reconstructor_noise_std,
        activation=config.activation,
    )
    discriminator = VEEGANDiscriminator(
        **{
            **shape,
            "latent_dim": config.latent_dim
            if OBJECTIVES[config.objective].joint and config.discriminator_reads_latents
            else 0,
            "base_channels": config.discriminator_base_channels or config.base_channels,
        },
        hidden_dim=config.discriminator_hidden_dim,
        num_hidden_layers=config.discriminator_num_hidden_layers,
        pack_size=config.pack_size_of_objective,
        sample_scale=config.discriminator_sample_scale,
        marginal_head=config.discriminator_marginal_head,
        spectral_norm=config.discriminator_spectral_norm,
    )
    return generator, reconstructor, discriminator


def make_optimizer(
    generator: nn.Module, reconstructor: nn.Module, discriminator: nn.Module, config: TrainingConfig, **kind: bool
) -> torch.optim.Adam:
    """One Adam with a parameter group per network (D may have its own rate); `kind` picks the implementation,
    e.g. `fused=True`. One optimizer steps all three at once: Algorithm 1's simultaneous update."""
    return torch.optim.Adam(
        [
            {"params": generator.parameters(), "lr": config.learning_rate},
            {"params": reconstructor.parameters(), "lr": config.learning_rate},
            {"params": discriminator.parameters(), "lr": config.discriminator_learning_rate or config.learning_rate},
        ],
        betas=(config.adam_beta1, config.adam_beta2),
        **kind,
    )


class EMA(nn.Module):
    """An exponential moving average of the generator, with a warm-up so early steps are not frozen in."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # saved in checkpoints
        self._updates: int | None = None  # host copy, read from the buffer once (after a resume) to avoid syncs
        self._param_lists: tuple[list, list] | None = None
        self._buffer_lists: tuple[list, list] = ([], [])

    @torch.no_grad()
    def update(self, model: nn.Module, copy: bool = False) -> None:
        """One step of the average; `copy=True` sets it to `model` instead and restarts its warm-up (`ema_start`)."""
        if self._updates is None:
            self._updates = int(self.num_updates)
        self._updates = 0 if copy else self._updates + 1
        self.num_updates.fill_(self._updates)
        # decay_t = min(decay, (1 + t) / (10 + t)): the average forgets its random initialization (or the copy it
        # started from) quickly; a copy is decay 0
        t = self._updates
        decay = 0.0 if copy else min(self.decay, (1 + t) / (10 + t))
        if self._param_lists is None:  # the tensors are updated in place: collect them once
            self._param_lists = (list(self.model.parameters()), list(model.parameters()))
            self._buffer_lists = (list(self.model.buffers()), list(model.buffers()))
        torch._foreach_lerp_(self._param_lists[0], self._param_lists[1], 1 - decay)
        if self._buffer_lists[0]:
            # BatchNorm statistics are copied, not averaged
            torch._foreach_copy_(self._buffer_lists[0], self._buffer_lists[1])
