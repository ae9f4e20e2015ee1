"""The paper's networks: shapes, pylearn2 initialisation, maxout grouping, dropout scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gansearch.models import MARGINAL_CLIP, Discriminator, Generator, _dropout, marginal_logits


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generator_shapes_range_and_init() -> None:
    bias = torch.linspace(-2.0, 2.0, 30)
    g = Generator(10, (50, 40), 30, 0.05, rng(), output_bias=bias)
    out = g(torch.rand(7, 10))
    assert out.shape == (7, 30)
    assert bool(((out > 0) & (out < 1)).all())
    assert [tuple(layer.weight.shape) for layer in (*g.hidden, g.out)] == [
        (50, 10),
        (40, 50),
        (30, 40),
    ]
    for layer in (*g.hidden, g.out):
        w = layer.weight.detach()
        assert float(w.abs().max()) <= 0.05
        assert float(w.abs().max()) > 0.04  # actually spread over the range, not e.g. 0
        assert abs(float(w.mean())) < 0.01
    for layer in g.hidden:
        assert bool((layer.bias == 0).all())
    assert torch.equal(g.out.bias.detach(), bias)


def test_discriminator_shapes_and_init() -> None:
    d = Discriminator(30, (12, 8), 5, (0.8, 0.5, 0.5), 0.005, rng())
    assert d(torch.rand(9, 30)).shape == (9,)
    assert [tuple(layer.weight.shape) for layer in (*d.hidden, d.out)] == [
        (60, 30),
        (40, 12),
        (1, 8),
    ]
    for layer in (*d.hidden, d.out):
        w = layer.weight.detach()
        assert float(w.abs().max()) <= 0.005
        assert float(w.abs().max()) > 0.002
        assert bool((layer.bias == 0).all())


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    before = torch.random.get_rng_state()
    a = Discriminator(6, (4,), 3, (1.0, 1.0), 0.1, rng(3))
    b = Discriminator(6, (4,), 3, (1.0, 1.0), 0.1, rng(3))
    c = Discriminator(6, (4,), 3, (1.0, 1.0), 0.1, rng(4))
    assert torch.equal(a.hidden[0].weight, b.hidden[0].weight)
    assert not torch.equal(a.hidden[0].weight, c.hidden[0].weight)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_output_bias_is_clipped_logit_of_mean_pixels() -> None:
    train = np.zeros((4, 3), dtype=np.float32)
    train[:, 1] = [0.0, 0.5, 1.0, 0.5]  # mean 0.5 -> logit 0
    train[:, 2] = 1.0  # mean 1 -> clipped to 1 - 1e-7
    b = marginal_logits(train)
    logit = math.log(MARGINAL_CLIP / (1 - MARGINAL_CLIP))
    assert b.dtype == torch.float32
    assert b.tolist() == pytest.approx([logit, 0.0, -logit], rel=1e-6)


def test_maxout_pieces_are_contiguous_groups() -> None:
    d = Discriminator(1, (2,), 3, (1.0, 1.0), 0.0, rng())
    with torch.no_grad():
        d.hidden[0].weight.copy_(torch.tensor([[1.0], [2.0], [3.0], [-1.0], [-2.0], [-3.0]]))
        d.out.weight.copy_(torch.tensor([[1.0, 10.0]]))
    # Contiguous groups: units max(1,2,3)=3 and max(-1,-2,-3)=-1 -> 3 - 10 = -7.
    # (Strided groups would give max(1,3,-2)=3 and max(2,-1,-3)=2 -> 23.)
    assert d(torch.ones(1, 1)).item() == pytest.approx(-7.0)


def test_dropout_keeps_with_probability_and_scales_by_inverse() -> None:
    h = torch.ones(200, 500)
    out = _dropout(h, 0.8, rng(1))
    assert out.unique().tolist() == pytest.approx([0.0, 1.25])
    kept = float((out != 0).float().mean())
    assert kept == pytest.approx(0.8, abs=0.01)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.015)  # inverse scaling keeps the mean
    assert _dropout(h, 1.0, rng(1)) is h
    assert _dropout(h, 0.5, None) is h


def test_discriminator_applies_dropout_only_with_a_generator() -> None:
    d = Discriminator(20, (10,), 2, (0.8, 0.5), 0.5, rng())
    x = torch.rand(16, 20)
    assert torch.equal(d(x), d(x))  # no generator: deterministic, no dropout
    assert not torch.allclose(d(x, rng(1)), d(x))
    assert torch.equal(d(x, rng(1)), d(x, rng(1)))
    # Keep-probability 1 everywhere: dropout is the identity even with a generator.
    d1 = Discriminator(20, (10,), 2, (1.0, 1.0), 0.5, rng())
    assert torch.equal(d1(x, rng(1)), d1(x))
