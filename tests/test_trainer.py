"""The trainer (gansearch.trainer): Algorithm 1 and pylearn2's update rule, schedules, k, exact
resume, divergence, checkpoints, and a bounded number of host synchronisations per epoch (the CUDA
path, counted through the CPU equivalents of the calls that would wait for a GPU)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gansearch.data import load_dataset
from gansearch.data.base import Dataset
from gansearch.errors import ConfigError, DivergenceError
from gansearch.train_config import MUTABLE_SETTINGS, TrainConfig, apply_overrides
from gansearch.trainer import DIVERGENCE_CHECK_EVERY, Trainer

TINY = {
    "generator.noise_dim": 3,
    "generator.noise": "uniform",  # the hand-computed updates below draw uniform noise
    "generator.units": [8],
    "generator.init_range": 0.3,
    "discriminator.units": [4],
    "discriminator.pieces": 2,
    "discriminator.init_range": 0.3,
    "discriminator.keep_probs": [0.8, 0.5],
    "optim.batch_size": 10,
    "eval.every": 0,
}


def tiny_dataset(n_train: int = 50, d: int = 6, seed: int = 0) -> Dataset:
    r = np.random.default_rng(seed)
    x = r.random((n_train + 40, d)).astype(np.float32)
    x[:, 0] = 0.0  # a pixel that is always 0: exercises the clipped marginal logit
    x.setflags(write=False)  # like the read-only memory-mapped cache
    return Dataset("tiny", x[:n_train], x[n_train : n_train + 20], x[n_train + 20 :], (2, d // 2))


def tiny_config(**overrides: Any) -> TrainConfig:
    return apply_overrides(TrainConfig(), {**TINY, **overrides})


def clone_rng(g: torch.Generator) -> torch.Generator:
    c = torch.Generator()
    c.set_state(g.get_state())
    return c


def record_sgd(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float]]:
    """Record (net, lr, momentum) of every update while still applying it."""
    calls: list[tuple[str, float, float]] = []
    original = Trainer._sgd

    def spy(params, velocity, grads, lr, momentum):  # noqa: ANN001, ANN202
        calls.append(("d" if params[0].shape[-1] != 3 else "g", lr, momentum))
        original(params, velocity, grads, lr, momentum)

    monkeypatch.setattr(Trainer, "_sgd", staticmethod(spy))
    return calls


# ----------------------------------------------------------------------------- the update rule


def _hand_d(params: list[torch.Tensor], x: torch.Tensor, masks: list[torch.Tensor], pieces: int):
    w0, b0, w1, b1 = params
    h = x * masks[0]
    z = h @ w0.T + b0
    h = z.reshape(len(x), -1, pieces).max(dim=2).values
    return ((h * masks[1]) @ w1.T + b1)[:, 0]


def _hand_g(params: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    w0, b0, w1, b1 = params
    return torch.sigmoid(torch.relu(z @ w0.T + b0) @ w1.T + b1)


def _masks(drop: torch.Generator, n: int, dims: list[int], keeps: list[float]):
    return [
        torch.empty(n, d).bernoulli_(p, generator=drop) / p
        for d, p in zip(dims, keeps, strict=True)
    ]


@pytest.mark.parametrize("g_loss", ["non_saturating", "minimax"])
def test_one_d_step_then_one_g_step_match_hand_computed_pylearn2_update(g_loss: str) -> None:
    lr_d, lr_g, mom = 0.3, 0.2, 0.5
    cfg = tiny_config(
        **{
            "optim.lr_d": lr_d,
            "optim.lr_g": lr_g,
            "optim.g_loss": g_loss,
            "optim.update": "alternating",
        }
    )
    data = tiny_dataset(n_train=10)  # one minibatch: one epoch = one D step + one G step
    t = Trainer(cfg, data)
    gp = [p.detach().clone() for p in t.g_params]
    dp = [p.detach().clone() for p in t.d_params]
    data_rng, noise, drop = (clone_rng(t.rngs[n]) for n in ("data", "noise", "dropout"))
    a, m = math.sqrt(3.0), 10

    # D step: data minibatch, fresh noise, D on [x; G(z)] with dropout, mean of the two BCEs.
    x = torch.tensor(data.train)[torch.randperm(10, generator=data_rng)]
    fake = _hand_g(gp, torch.empty(m, 3).uniform_(-a, a, generator=noise))
    dp_req = [p.clone().requires_grad_() for p in dp]
    logits = _hand_d(dp_req, torch.cat([x, fake]), _masks(drop, 2 * m, [6, 4], [0.8, 0.5]), 2)
    d_obj = -0.5 * (
        torch.log(torch.sigmoid(logits[:m])).mean()
        + torch.log(1 - torch.sigmoid(logits[m:])).mean()
    )
    grads = torch.autograd.grad(d_obj, dp_req)
    dv = [mom * 0.0 - lr_d * g for g in grads]
    dp_new = [p + v for p, v in zip(dp, dv, strict=True)]

    # G step: fresh noise, scored by the *updated* D with fresh dropout masks.
    gp_req = [p.clone().requires_grad_() for p in gp]
    samples = _hand_g(gp_req, torch.empty(m, 3).uniform_(-a, a, generator=noise))
    dgz = torch.sigmoid(_hand_d(dp_new, samples, _masks(drop, m, [6, 4], [0.8, 0.5]), 2))
    g_obj = -torch.log(dgz).mean() if g_loss == "non_saturating" else torch.log(1 - dgz).mean()
    grads = torch.autograd.grad(g_obj, gp_req)
    gv = [-lr_g * g for g in grads]
    gp_new = [p + v for p, v in zip(gp, gv, strict=True)]

    metrics = t.run_epoch()
    assert (metrics.d_steps, metrics.g_steps) == (1, 1)
    assert metrics.d_loss == pytest.approx(d_obj.item(), rel=1e-5)
    assert metrics.g_loss == pytest.approx(g_obj.item(), rel=1e-5)
    for got, want in zip(t.d_params, dp_new, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-7)
    for got, want in zip(t.d_velocity, dv, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    for got, want in zip(t.g_params, gp_new, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-7)
    for got, want in zip(t.g_velocity, gv, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("g_loss", ["non_saturating", "minimax"])
def test_simultaneous_step_matches_hand_computed_released_code_update(g_loss: str) -> None:
    """AdversaryCost2 + stock SGD: one pass, same noise, samples and masks, pre-update D."""
    lr_d, lr_g = 0.3, 0.2
    cfg = tiny_config(
        **{
            "optim.update": "simultaneous",
            "optim.lr_d": lr_d,
            "optim.lr_g": lr_g,
            "optim.g_loss": g_loss,
        }
    )
    data = tiny_dataset(n_train=10)  # one minibatch: one epoch = one simultaneous step
    t = Trainer(cfg, data)
    gp = [p.detach().clone() for p in t.g_params]
    dp = [p.detach().clone() for p in t.d_params]
    data_rng, noise, drop = (clone_rng(t.rngs[n]) for n in ("data", "noise", "dropout"))
    a, m = math.sqrt(3.0), 10

    x = torch.tensor(data.train)[torch.randperm(10, generator=data_rng)]
    gp_req = [p.clone().requires_grad_() for p in gp]
    dp_req = [p.clone().requires_grad_() for p in dp]
    fake = _hand_g(gp_req, torch.empty(m, 3).uniform_(-a, a, generator=noise))
    masks = _masks(drop, 2 * m, [6, 4], [0.8, 0.5])  # one set of masks for both objectives
    logits = _hand_d(dp_req, torch.cat([x, fake]), masks, 2)
    d_obj = -0.5 * (
        torch.log(torch.sigmoid(logits[:m])).mean()
        + torch.log(1 - torch.sigmoid(logits[m:])).mean()
    )
    dgz = torch.sigmoid(logits[m:])
    g_obj = -torch.log(dgz).mean() if g_loss == "non_saturating" else torch.log(1 - dgz).mean()
    d_grads = torch.autograd.grad(d_obj, dp_req, retain_graph=True)
    g_grads = torch.autograd.grad(g_obj, gp_req)  # through the pre-update D
    dv = [-lr_d * g for g in d_grads]
    gv = [-lr_g * g for g in g_grads]

    metrics = t.run_epoch()
    assert (metrics.d_steps, metrics.g_steps) == (1, 1)
    assert (t.d_updates, t.g_updates) == (1, 1)
    assert metrics.d_loss == pytest.approx(d_obj.item(), rel=1e-5)
    assert metrics.g_loss == pytest.approx(g_obj.item(), rel=1e-5)
    assert metrics.d_fake == pytest.approx(dgz.mean().item(), rel=1e-5)
    for got, p, v in zip(t.d_params, dp, dv, strict=True):
        torch.testing.assert_close(got.detach(), p + v, rtol=1e-5, atol=1e-7)
    for got, p, v in zip(t.g_params, gp, gv, strict=True):
        torch.testing.assert_close(got.detach(), p + v, rtol=1e-5, atol=1e-7)
    for got, want in zip((*t.d_velocity, *t.g_velocity), (*dv, *gv), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


def test_paper_noise_is_standard_gaussian_and_uniform_is_selectable() -> None:
    """The released MNIST run drew N(0, 1) noise; uniform in +-sqrt(3) (unit variance) or in
    +-noise_scale stays available."""
    paper_g = TrainConfig().generator
    assert (paper_g.noise, paper_g.noise_scale) == ("gaussian", None)
    data, n = tiny_dataset(), 200_000
    paper = {k: v for k, v in TINY.items() if k != "generator.noise"}
    t = Trainer(apply_overrides(TrainConfig(), paper), data)
    rng = clone_rng(t.rngs["noise"])
    z = t.noise(n)
    assert torch.equal(z, torch.empty(n, 3).normal_(0.0, 1.0, generator=rng))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1.0) < 0.01
    assert float(z.abs().max()) > 3.0  # unbounded: beyond the uniform's sqrt(3) edge
    kurtosis = float((z**4).mean() / (z**2).mean() ** 2)
    assert abs(kurtosis - 3.0) < 0.1  # Gaussian; a uniform's is 1.8

    u = Trainer(tiny_config(), data).noise(n)  # TINY selects uniform
    assert float(u.abs().max()) <= math.sqrt(3.0) and abs(float(u.std()) - 1.0) < 0.01
    assert abs(float((u**4).mean() / (u**2).mean() ** 2) - 1.8) < 0.05
    wide = Trainer(tiny_config(**{"generator.noise_scale": 2.0}), data).noise(n)
    assert 1.99 < float(wide.abs().max()) <= 2.0
    g2 = Trainer(tiny_config(**{"generator.noise": "gaussian", "generator.noise_scale": 2.0}), data)
    assert abs(float(g2.noise(n).std()) - 2.0) < 0.02


def test_update_rule_is_validated_and_defaults_to_the_released_code() -> None:
    with pytest.raises(ConfigError, match=r"optim\.update: must be one of alternating, simult"):
        tiny_config(**{"optim.update": "sequential"})
    assert TrainConfig().optim.update == "simultaneous"


def test_momentum_update_is_v_equals_mom_v_minus_lr_grad_then_p_plus_v() -> None:
    p, v, g = [torch.tensor([1.0, 2.0])], [torch.tensor([0.5, -1.0])], (torch.tensor([2.0, 4.0]),)
    Trainer._sgd(p, v, g, 0.1, 0.7)
    v_want = torch.tensor([0.7 * 0.5 - 0.2, 0.7 * -1.0 - 0.4])
    torch.testing.assert_close(v[0], v_want)
    torch.testing.assert_close(p[0], torch.tensor([1.0, 2.0]) + v_want)


# ----------------------------------------------------------------------------- schedules and k


def test_learning_rate_divided_per_update_of_that_net_and_floored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = record_sgd(monkeypatch)
    cfg = tiny_config(
        **{"optim.lr_d": 0.1, "optim.lr_g": 0.4, "optim.lr_decay": 2.0, "optim.lr_min": 0.01}
    )
    t = Trainer(cfg, tiny_dataset(n_train=60))
    t.fit(1)
    d_lrs = [lr for net, lr, _ in calls if net == "d"]
    g_lrs = [lr for net, lr, _ in calls if net == "g"]
    assert d_lrs == pytest.approx([0.1, 0.05, 0.025, 0.0125, 0.01, 0.01])
    assert g_lrs == pytest.approx([0.4, 0.2, 0.1, 0.05, 0.025, 0.0125])
    assert t.history[0].lr_d == pytest.approx(0.01)
    assert t.history[0].lr_g == pytest.approx(0.0125)


def test_momentum_rises_linearly_from_epoch_start_to_saturate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = Trainer(tiny_config(), tiny_dataset())
    assert t.momentum(1) == pytest.approx(0.5)
    assert t.momentum(2) == pytest.approx(0.5 + 0.2 / 249)
    assert t.momentum(126) == pytest.approx(0.5 + 0.2 * 125 / 249)
    assert t.momentum(250) == pytest.approx(0.7)
    assert t.momentum(400) == pytest.approx(0.7)
    calls = record_sgd(monkeypatch)
    cfg = tiny_config(
        **{"optim.momentum_saturate_epoch": 3, "optim.momentum_end": 0.9, "optim.lr_d": 0.01}
    )
    t = Trainer(cfg, tiny_dataset(n_train=20))
    t.fit(4)
    per_epoch = [sorted({mom for _, _, mom in calls[i * 4 : (i + 1) * 4]}) for i in range(4)]
    assert per_epoch == [[0.5], [pytest.approx(0.7)], [0.9], [0.9]]
    assert [m.momentum for m in t.history] == pytest.approx([0.5, 0.7, 0.9, 0.9])


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize(("k", "g_per_epoch"), [(1, [10, 10, 10]), (3, [3, 3, 4]), (4, [2, 3, 2])])
def test_k_discriminator_steps_per_generator_step(
    k: int, g_per_epoch: list[int], update: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_sgd(monkeypatch)
    cfg = tiny_config(**{"optim.k": k, "optim.lr_d": 0.01, "optim.update": update})
    t = Trainer(cfg, tiny_dataset(n_train=105))
    t.fit(3)
    assert [m.d_steps for m in t.history] == [10, 10, 10]  # 105 // 10; the partial batch dropped
    assert [m.g_steps for m in t.history] == g_per_epoch
    nets = "".join(net for net, _, _ in calls)
    assert nets.count("d") == 30 and nets.count("g") == sum(g_per_epoch)
    assert nets[: k + 1] == "d" * k + "g"  # k D updates, then one G update
    assert (t.d_updates, t.g_updates) == (30, sum(g_per_epoch))


# ----------------------------------------------------------------------------- resume, checkpoints


def _snapshot(t: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*t.g_params, *t.d_params, *t.g_velocity, *t.d_velocity)]


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_resume_from_checkpoint_is_bit_identical_to_never_stopping(tmp_path, update: str) -> None:
    cfg = tiny_config(
        **{
            "eval.every": 2,
            "eval.samples": 200,
            "eval.n_valid": None,
            "optim.update": update,
            "optim.k": 2,
        }
    )
    data = tiny_dataset(n_train=50)
    straight = Trainer(cfg, data)
    straight.fit(5)

    first = Trainer(cfg, data)
    first.fit(2)
    path = first.save_checkpoint(tmp_path / "ckpt.pt")
    del first
    resumed = Trainer.from_checkpoint(path, data)
    assert resumed.epoch == 2
    resumed.fit(5)

    for a, b in zip(_snapshot(straight), _snapshot(resumed), strict=True):
        assert torch.equal(a, b)

    def timeless(t: Trainer) -> list[dict[str, Any]]:
        return [{**m.as_dict(), "seconds": 0, "eval_seconds": 0} for m in t.history]

    assert timeless(straight) == timeless(resumed)
    assert straight.history[3].valid_ll is not None  # eval RNG state was restored too
    assert torch.equal(straight.sample(20), resumed.sample(20))


def test_resume_with_new_optimiser_settings_continues_under_them(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What population-based training does: the copied state, new lr, k, momentum, dropout."""
    cfg = tiny_config(**{"optim.lr_decay": 2.0, "optim.lr_min": 1e-9})
    data = tiny_dataset(n_train=60)
    first = Trainer(cfg, data)
    first.fit(1)
    path = first.save_checkpoint(tmp_path / "ckpt.pt")
    same = Trainer.from_checkpoint(path, data, config=cfg, may_change=MUTABLE_SETTINGS)
    assert all(torch.equal(a, b) for a, b in zip(_snapshot(first), _snapshot(same), strict=True))

    changed = apply_overrides(
        cfg,
        {
            "optim.lr_d": 0.3,
            "optim.lr_g": 0.2,
            "optim.k": 2,
            "optim.momentum_end": 0.9,
            "optim.momentum_saturate_epoch": 2,
            "discriminator.keep_probs": [0.9, 0.6],
        },
    )
    # The momentum schedule is not mutable, so the unchanged saturate epoch is refused first.
    with pytest.raises(ConfigError, match="optim.momentum_saturate_epoch"):
        Trainer.from_checkpoint(path, data, config=changed, may_change=MUTABLE_SETTINGS)
    changed = apply_overrides(changed, {"optim.momentum_saturate_epoch": 250})
    resumed = Trainer.from_checkpoint(path, data, config=changed, may_change=MUTABLE_SETTINGS)
    assert all(torch.equal(a, b) for a, b in zip(_snapshot(first), _snapshot(resumed), strict=True))
    assert resumed.discriminator.keep_probs == (0.9, 0.6)
    calls = record_sgd(monkeypatch)
    resumed.fit(2)
    d_updates_before = first.d_updates  # the new base rate, decayed by the updates already made
    d_lrs = [lr for net, lr, _ in calls if net == "d"]
    assert d_lrs[0] == pytest.approx(0.3 / 2.0**d_updates_before)
    assert resumed.history[-1].d_steps == 6 and resumed.history[-1].g_steps == 3  # k = 2
    assert resumed.history[-1].momentum == pytest.approx(0.5 + 0.4 / 249)


def test_resume_refuses_a_change_of_the_networks_shape(tmp_path) -> None:
    cfg = tiny_config()
    t = Trainer(cfg, tiny_dataset())
    t.fit(1)
    path = t.save_checkpoint(tmp_path / "ckpt.pt")
    wider = apply_overrides(cfg, {"generator.units": [16]})
    with pytest.raises(
        ConfigError, match=r"generator.units: the checkpoint was trained with \[8\]"
    ):
        Trainer.from_checkpoint(path, tiny_dataset(), config=wider, may_change=MUTABLE_SETTINGS)
    more_pieces = apply_overrides(cfg, {"discriminator.pieces": 3})
    with pytest.raises(ConfigError, match="discriminator.pieces"):
        Trainer.from_checkpoint(path, tiny_dataset(), config=more_pieces, may_change=())


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_checkpoint_loads_with_weights_only_and_is_written_atomically(
    tmp_path, update: str
) -> None:
    t = Trainer(tiny_config(**{"optim.update": update}), tiny_dataset())
    t.fit(1)
    path = t.save_checkpoint(tmp_path / "run" / "ckpt.pt")
    t.save_checkpoint(path)  # overwriting goes through a temporary file too
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["d_updates"] == 5
    assert set(state["rng"]) == {"data", "noise", "dropout", "eval"}
    assert state["config"]["optim"]["batch_size"] == 10
    assert state["config"]["optim"]["update"] == update
    assert Trainer.from_checkpoint(path, tiny_dataset()).config.optim.update == update
    assert len(state["history"]) == 1


def test_different_seeds_differ_and_same_seed_repeats() -> None:
    data = tiny_dataset()
    a, b = Trainer(tiny_config(), data), Trainer(tiny_config(), data)
    c = Trainer(tiny_config(seed=1), data)
    for t in (a, b, c):
        t.fit(2)
    assert torch.equal(a.g_params[0], b.g_params[0])
    assert not torch.equal(a.g_params[0], c.g_params[0])


def test_training_leaves_the_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    t = Trainer(tiny_config(**{"eval.every": 1, "eval.samples": 50}), tiny_dataset())
    t.fit(1)
    assert torch.equal(torch.random.get_rng_state(), before)


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_absurd_learning_rate_raises_divergence_error_with_epoch_and_step(update: str) -> None:
    cfg = tiny_config(**{"optim.lr_d": 1e30, "optim.lr_g": 1e30, "optim.update": update})
    t = Trainer(cfg, tiny_dataset())
    with pytest.raises(DivergenceError, match=r"epoch 1, step \d+") as info:
        t.fit(3)
    err = info.value
    assert err.epoch == 1
    assert 1 <= err.step <= 5
    assert t.history == []  # never reported as a number


def test_batch_larger_than_training_set_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="optim.batch_size"):
        Trainer(tiny_config(**{"optim.batch_size": 100}), tiny_dataset(n_train=50))


def test_metrics_are_finite_means_of_the_epoch() -> None:
    t = Trainer(tiny_config(), tiny_dataset())
    m = t.run_epoch()
    assert 0 < m.d_real < 1 and 0 < m.d_fake < 1
    assert m.d_loss > 0 and m.g_loss > 0 and m.seconds > 0
    assert m.valid_ll is None  # eval.every = 0
    logits_real = F.logsigmoid(torch.tensor([0.0]))  # sanity of the loss scale: log 2 at D = 1/2
    assert abs(m.d_loss - float(-logits_real)) < 0.5


def test_cpu_trainer_shares_the_training_array_instead_of_copying_it() -> None:
    """Trials on a node share the memory-mapped data set's pages; a private copy would not."""
    data = tiny_dataset()
    t = Trainer(tiny_config(), data)
    assert t.train_x.data_ptr() == data.train.ctypes.data
    t.fit(1)
    assert not data.train.flags.writeable  # and training never wrote into it


def test_quality_scorer_adds_fid_coverage_and_confidence_of_the_same_samples(
    digits_scorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gansearch.data import load_dataset
    from gansearch.parzen import ParzenConfig, evaluate

    digits = load_dataset("digits")
    config = apply_overrides(
        TrainConfig(),
        {
            "generator.noise_dim": 4,
            "generator.units": [16],
            "discriminator.units": [8],
            "discriminator.pieces": 2,
            "discriminator.keep_probs": [0.8, 0.5],
            "optim.batch_size": 50,
            "eval.every": 1,
            "eval.samples": 300,
            "eval.n_valid": None,
        },
    )
    plain = Trainer(config, digits).run_epoch()
    assert plain.fid is None and plain.classes_covered is None

    seen = []
    original = digits_scorer.score

    def spy(samples, source="samples"):  # noqa: ANN001, ANN202
        seen.append(samples.clone())
        return original(samples, source)

    monkeypatch.setattr(digits_scorer, "score", spy)
    scored = Trainer(config, digits, quality=digits_scorer).run_epoch()
    # Adding the classifier changes no Parzen number: same RNG streams, same samples.
    assert scored.valid_ll == plain.valid_ll and scored.sigma == plain.sigma
    (samples,) = seen
    assert samples.shape == (300, 64)
    parzen = evaluate(samples, digits.valid, None, ParzenConfig(sigmas=(scored.sigma,)))
    assert parzen.valid_mean == pytest.approx(scored.valid_ll, rel=1e-6)
    expected = original(samples).metrics()
    assert scored.fid == expected["fid"] and scored.fid > 0
    assert scored.classes_covered == expected["classes_covered"]
    assert 1 <= scored.classes_covered <= 10
    assert scored.class_kl == expected["class_kl"] >= 0
    assert 0 < scored.confidence == expected["confidence"] <= 1


@pytest.mark.slow
def test_compiled_training_matches_eager_within_float_tolerance(tmp_path):
    """`compile: true` captures G and D with torch.compile: the same run within float32
    tolerance (same RNG streams, same updates), and its checkpoints are plain ones."""
    from gansearch.data import load_dataset

    data = load_dataset("digits")
    overrides = {
        "data.name": "digits",
        "generator.units": [64, 64],
        "discriminator.units": [32, 32],
        "optim.batch_size": 25,
        "eval.every": 0,
    }
    eager = Trainer(apply_overrides(TrainConfig(), overrides), data)
    compiled = Trainer(apply_overrides(TrainConfig(), {**overrides, "compile": True}), data)
    for _ in range(2):
        eager.run_epoch()
        compiled.run_epoch()
    for a, b in zip(
        eager.g_params + eager.d_params, compiled.g_params + compiled.d_params, strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert compiled.history[-1].d_loss == pytest.approx(eager.history[-1].d_loss, abs=1e-4)
    compiled.save_checkpoint(tmp_path / "c.pt")
    plain = Trainer.from_checkpoint(tmp_path / "c.pt", data, config=eager.config)
    assert not plain.config.compile and plain.epoch == 2
    for a, b in zip(plain.g_params, compiled.g_params, strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- host synchronisation

SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


def _count_syncs(monkeypatch) -> list[str]:
    """Record every call that would copy a value from the GPU to the host (and so wait)."""
    calls: list[str] = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.slow
def test_a_training_epoch_syncs_with_the_host_a_bounded_number_of_times(monkeypatch):
    config = apply_overrides(
        TrainConfig(),
        {
            "data.name": "digits",
            "optim.batch_size": 4,  # 299 steps an epoch
            "generator.units": [32, 32],
            "discriminator.units": [16, 16],
            "eval.every": 0,
        },
    )
    trainer = Trainer(config, load_dataset("digits"))
    calls = _count_syncs(monkeypatch)
    trainer.run_epoch()
    steps = len(trainer.train_x) // 4
    checks = math.ceil(steps / DIVERGENCE_CHECK_EVERY)
    # The divergence checks (every DIVERGENCE_CHECK_EVERY steps and at the end), the parameter
    # norms and the epoch's means: a handful, not one per step.
    assert steps >= 290 and len(calls) <= checks + 8, calls
