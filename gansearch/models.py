"""The paper's MNIST networks: an MLP generator and a maxout discriminator with dropout.

Both follow pylearn2 as goodfeli/adversarial's mnist.yaml used it: weights uniform in
[-irange, irange], biases 0, the generator's sigmoid biases at the logit of the training set's mean
pixels (clipped to [1e-7, 1 - 1e-7] as `init_sigmoid_bias_from_array` does), maxout pieces
grouped contiguously (unit j is the max of pre-activations j*pieces .. j*pieces + pieces - 1), and
dropout on the input of every discriminator layer with inverse scaling (kept values times 1/p).
All randomness comes from explicit `torch.Generator` objects; nothing touches the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MARGINAL_CLIP = 1e-7  # pylearn2.models.dbm.init_sigmoid_bias_from_array
SAMPLE_BATCH = 5000  # noise vectors drawn and pushed through G at a time when sampling


@dataclass(frozen=True)
class NoiseSpec:
    """How G's input is drawn: gaussian N(0, scale^2) or uniform in [-scale, scale], `dim` wide.

    Stored beside an exported generator, so that anyone can sample from it with plain PyTorch.
    """

    kind: str  # "gaussian" or "uniform"
    dim: int
    scale: float

    @classmethod
    def of(cls, kind: str, dim: int, scale: float | None) -> NoiseSpec:
        """The spec of a generator config's noise (None: unit variance)."""
        default = math.sqrt(3.0) if kind == "uniform" else 1.0
        return cls(kind, int(dim), float(default if scale is None else scale))

    def draw(
        self, n: int, rng: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """n noise vectors, from `rng` (on `device`)."""
        z = torch.empty(n, self.dim, device=device)
        if self.kind == "uniform":
            return z.uniform_(-self.scale, self.scale, generator=rng)
        return z.normal_(0.0, self.scale, generator=rng)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def generate(
    generator: Callable[[torch.Tensor], torch.Tensor],
    noise: NoiseSpec,
    n: int,
    rng: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """n samples of `generator` as a (n, d) float32 CPU tensor, the noise drawn SAMPLE_BATCH
    vectors at a time from `rng` (the same draws, whatever loaded the generator)."""
    chunks = [
        generator(noise.draw(min(SAMPLE_BATCH, n - i), rng, device)).cpu()
        for i in range(0, n, SAMPLE_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def marginal_logits(train: np.ndarray) -> torch.Tensor:
    """Logit of the per-pixel mean of `train` (n, d), clipped away from 0 and 1, as float32."""
    mean = np.asarray(train).mean(axis=0, dtype=np.float64)  # no float64 copy of the data
    mean = np.clip(mean, MARGINAL_CLIP, 1.0 - MARGINAL_CLIP)
    return torch.from_numpy(np.log(mean) - np.log1p(-mean)).to(torch.float32)


def _linear(n_in: int, n_out: int, init_range: float, rng: torch.Generator) -> nn.Linear:
    """A Linear layer with weights uniform in [-init_range, init_range] and zero biases."""
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)  # no global-RNG default init
    with torch.no_grad():
        layer.weight.uniform_(-init_range, init_range, generator=rng)
        layer.bias.zero_()
    return layer


class Generator(nn.Module):
    """z -> ReLU layers -> sigmoid output in [0, 1]^out_dim."""

    def __init__(
        self,
        noise_dim: int,
        units: Sequence[int],
        out_dim: int,
        init_range: float,
        rng: torch.Generator,
        output_bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        dims = [noise_dim, *units]
        self.hidden = nn.ModuleList(
            _linear(a, b, init_range, rng) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = _linear(dims[-1], out_dim, init_range, rng)
        if output_bias is not None:
            with torch.no_grad():
                self.out.bias.copy_(output_bias)
        self.noise_dim = noise_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.hidden:
            h = F.relu(layer(h))
        return torch.sigmoid(self.out(h))


class Discriminator(nn.Module):
    """x -> maxout layers -> one logit; dropout on every layer's input when given a generator."""

    def __init__(
        self,
        in_dim: int,
        units: Sequence[int],
        pieces: int,
        keep_probs: Sequence[float],
        init_range: float,
        rng: torch.Generator,
    ) -> None:
        super().__init__()
        if len(keep_probs) != len(units) + 1:
            raise ValueError(f"need {len(units) + 1} keep probabilities, got {len(keep_probs)}")
        dims = [in_dim, *units]
        self.hidden = nn.ModuleList(
            _linear(a, b * pieces, init_range, rng)
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = _linear(dims[-1], 1, init_range, rng)
        self.units = tuple(units)
        self.pieces = pieces
        self.keep_probs = tuple(float(p) for p in keep_probs)

    def forward(self, x: torch.Tensor, dropout: torch.Generator | None = None) -> torch.Tensor:
        """Logits of shape (n,). With `dropout` (the RNG of the masks) dropout is applied."""
        h = x
        for i, layer in enumerate(self.hidden):
            h = _dropout(h, self.keep_probs[i], dropout)
            h = layer(h).unflatten(-1, (self.units[i], self.pieces)).amax(-1)
        h = _dropout(h, self.keep_probs[-1], dropout)
        return self.out(h).squeeze(-1)


def _dropout(h: torch.Tensor, keep: float, rng: torch.Generator | None) -> torch.Tensor:
    """Keep each value with probability `keep` and scale kept values by 1/keep (pylearn2)."""
    if rng is None or keep >= 1.0:
        return h
    mask = torch.empty_like(h).bernoulli_(keep, generator=rng).mul_(1.0 / keep)
    return h * mask
