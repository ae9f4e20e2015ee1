"""The paper's Algorithm 1 as a small library: train epoch by epoch, checkpoint, resume exactly.

    trainer = Trainer(config, dataset)
    trainer.fit(config.epochs, callback=print)           # one EpochMetrics per epoch
    trainer.save_checkpoint("run/checkpoint.pt")
    trainer = Trainer.from_checkpoint("run/checkpoint.pt", dataset)   # continues bit-identically

One epoch is one pass over the shuffled training set in data minibatches of `optim.batch_size`
(a last partial batch is dropped); every data minibatch is one discriminator step, and every k-th
discriminator step (counted over the whole run) comes with one generator step.
- `optim.update: simultaneous` (the default; what the released pylearn2 code does: stock SGD on
  AdversaryCost2): the k-th step is one forward pass of G on fresh noise and of D on
  [data; G(z)] with one set of dropout masks; D's gradient (of its cross-entropy) and G's
  gradient (of its loss on those same logits, i.e. through the pre-update D) both come from that
  pass and both nets are updated. The other k - 1 steps update D alone. With k = 1 (the paper's
  setting) this is exactly the released code.
- `optim.update: alternating` (Algorithm 1 read literally): D's step on the data minibatch and
  fresh noise, then G's step on fresh noise scored by the updated D with fresh dropout masks.
  With the released hyperparameters it collapses within two epochs on MNIST (every sample the
  same saturated image; benchmarks/mnist_dynamics.py), where the simultaneous rule trains.
Updates are pylearn2's SGD with momentum:
    v <- momentum * v - lr * grad;  p <- p + v
with lr = max(lr0 / decay**n, lr_min) at the n-th update of that net (pylearn2's ExponentialDecay)
and momentum set per epoch by pylearn2's MomentumAdjustor. Nothing here knows about Ray or MLflow.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from gansearch.data.base import Dataset
from gansearch.devices import resolve_device
from gansearch.errors import ConfigError, DivergenceError, GansearchError, first_line
from gansearch.files import atomic_path
from gansearch.models import Discriminator, Generator, NoiseSpec, generate, marginal_logits
from gansearch.train_config import (
    TrainConfig,
    changed_settings,
    config_from_dict,
    config_to_dict,
)

if TYPE_CHECKING:
    from gansearch.parzen import ParzenConfig

CHECKPOINT_FORMAT = "gansearch.trainer/1"
RNG_STREAMS = ("data", "noise", "dropout", "eval")  # each its own torch.Generator
DIVERGENCE_CHECK_EVERY = 100  # steps between the (single, cheap) host syncs of the NaN check
_NO_BAD_STEP = 2**62


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch did: mean losses and D outputs over its steps, schedules, validation LL."""

    epoch: int
    d_loss: float  # mean over the epoch's D steps of the mean of the two cross-entropies
    g_loss: float  # mean over the epoch's G steps (nan only if the epoch had no G step)
    d_real: float  # mean D(x) on the data minibatches (with dropout, as trained)
    d_fake: float  # mean D(G(z)) in the D steps (with dropout, as trained)
    lr_d: float  # learning rate of the last D update of the epoch
    lr_g: float
    momentum: float
    d_steps: int  # updates of D in this epoch
    g_steps: int
    seconds: float  # wall time of the training steps
    valid_ll: float | None = None  # Parzen mean validation log-likelihood (eval epochs only)
    valid_se: float | None = None
    sigma: float | None = None
    eval_seconds: float = 0.0
    # The quality classifier's view of the same samples (only with a `quality` scorer).
    fid: float | None = None
    classes_covered: int | None = None
    class_kl: float | None = None
    confidence: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints, JSON and a Ray Tune report)."""
        return asdict(self)


def parzen_protocol(
    config: TrainConfig,
    n_valid: int | None,
    sigmas: Sequence[float] | None = None,
    device: torch.device | None = None,
) -> ParzenConfig:
    """The Parzen protocol of `config`'s eval settings: its sigma grid unless `sigmas` is given,
    `n_valid` validation images, on `device` (default: the config's device)."""
    from gansearch.parzen import ParzenConfig

    e = config.eval
    return ParzenConfig(
        sigmas=tuple(e.sigmas if sigmas is None else sigmas),
        n_valid=n_valid,
        precision=e.precision,
        device=str(device if device is not None else resolve_device(config.device)),
    )


def _training_tensor(train: np.ndarray, device: torch.device) -> torch.Tensor:
    """The training set as a tensor on `device`, without a private copy on the CPU.

    The data set's arrays may be read-only views of the memory-mapped Arrow cache, whose pages
    every trial on a node shares; minibatches are gathered (copied) out of it and nothing ever
    writes into it, so on the CPU the tensor wraps the array as it is.
    """
    array = np.asarray(train, dtype=np.float32)
    if device.type != "cpu":
        return torch.from_numpy(np.array(array)).to(device)
    with warnings.catch_warnings():  # torch warns that the shared array is not writable
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _stream_seeds(seed: int) -> dict[str, int]:
    """Independent 63-bit seeds for the init RNG and each RNG stream, derived from `seed`."""
    names = ("init", *RNG_STREAMS)
    states = np.random.SeedSequence(seed).generate_state(len(names), dtype=np.uint64)
    return {n: int(s) >> 1 for n, s in zip(names, states, strict=True)}


class Trainer:
    """Trains one GAN configuration on one data set; see the module docstring."""

    def __init__(self, config: TrainConfig, dataset: Dataset, quality: Any = None) -> None:
        """`quality` (a gansearch.quality.QualityScorer) adds FID, class coverage and confidence
        of the evaluation samples to every evaluated epoch's metrics."""
        o = config.optim
        n_train = int(dataset.train.shape[0])
        if o.batch_size > n_train:
            raise ConfigError(
                f"optim.batch_size: {o.batch_size} exceeds the {n_train} training examples of "
                f"{dataset.name}"
            )
        self.config = config
        self.dataset = dataset
        self.device = resolve_device(config.device)
        self.train_x = _training_tensor(dataset.train, self.device)
        self.quality = quality.to(self.device) if quality is not None else None

        seeds = _stream_seeds(config.seed)
        init_rng = torch.Generator().manual_seed(seeds["init"])
        g, d = config.generator, config.discriminator
        bias = marginal_logits(dataset.train) if g.output_bias == "marginals" else None
        self.generator = Generator(
            g.noise_dim, g.units, dataset.dim, g.init_range, init_rng, bias
        ).to(self.device)
        self.discriminator = Discriminator(
            dataset.dim, d.units, d.pieces, d.keep_probs, d.init_range, init_rng
        ).to(self.device)
        # What the training step calls: the networks, or with `compile` their torch.compile
        # captures (same parameters; checkpoints always hold the plain modules).
        self._g: Callable[..., torch.Tensor] = self.generator
        self._d: Callable[..., torch.Tensor] = self.discriminator
        if config.compile:
            self._g, self._d = torch.compile(self.generator), torch.compile(self.discriminator)
        self.g_params = list(self.generator.parameters())
        self.d_params = list(self.discriminator.parameters())
        self.g_velocity = [torch.zeros_like(p) for p in self.g_params]
        self.d_velocity = [torch.zeros_like(p) for p in self.d_params]
        self.rngs = {
            name: torch.Generator(device=self.device).manual_seed(seeds[name])
            for name in RNG_STREAMS
        }
        self.epoch = 0  # completed epochs
        self.d_updates = 0  # over the whole run: drives the learning-rate decay and k
        self.g_updates = 0
        self.history: list[EpochMetrics] = []
        targets = torch.cat([torch.ones(o.batch_size), torch.zeros(o.batch_size)])
        self._d_targets = targets.to(self.device)

    # ------------------------------------------------------------------ schedules

    def lr_d(self) -> float:
        """Learning rate of D's next update."""
        o = self.config.optim
        return max(o.lr_d / o.lr_decay**self.d_updates, o.lr_min)

    def lr_g(self) -> float:
        """Learning rate of G's next update."""
        o = self.config.optim
        return max(o.lr_g / o.lr_decay**self.g_updates, o.lr_min)

    def momentum(self, epoch: int) -> float:
        """Momentum during `epoch` (1-based), as pylearn2's MomentumAdjustor sets it."""
        o = self.config.optim
        width = o.momentum_saturate_epoch - o.momentum_start_epoch
        if width == 0:
            return o.momentum_end if epoch >= o.momentum_start_epoch else o.momentum_start
        alpha = min(max((epoch - o.momentum_start_epoch) / width, 0.0), 1.0)
        return o.momentum_start * (1.0 - alpha) + alpha * o.momentum_end

    # ------------------------------------------------------------------ one step each

    def noise(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """n noise vectors from the configured distribution (default: the training stream)."""
        rng = self.rngs["noise"] if rng is None else rng
        return self.noise_spec.draw(n, rng, self.device)

    @property
    def noise_spec(self) -> NoiseSpec:
        """G's noise distribution (what an exported generator needs beside it)."""
        g = self.config.generator
        return NoiseSpec.of(g.noise, g.noise_dim, g.noise_scale)

    @staticmethod
    @torch.no_grad()
    def _sgd(params: list, velocity: list, grads: tuple, lr: float, momentum: float) -> None:
        """pylearn2's Momentum rule: v = momentum * v - lr * grad; p += v (foreach kernels)."""
        torch._foreach_mul_(velocity, momentum)
        torch._foreach_add_(velocity, grads, alpha=-lr)
        torch._foreach_add_(params, velocity)

    def _d_step(self, x: torch.Tensor, momentum: float) -> tuple[torch.Tensor, ...]:
        """One D update on data `x` and fresh noise; returns loss, mean D(x), mean D(G(z))."""
        m = x.shape[0]
        with torch.no_grad():
            fake = self._g(self.noise(m))
        # Real and generated examples in one batch: each row gets its own dropout mask anyway.
        logits = self._d(torch.cat([x, fake]), self.rngs["dropout"])
        loss = F.binary_cross_entropy_with_logits(logits, self._d_targets[: 2 * m])
        grads = torch.autograd.grad(loss, self.d_params)
        self._sgd(self.d_params, self.d_velocity, grads, self.lr_d(), momentum)
        self.d_updates += 1
        with torch.no_grad():
            p = torch.sigmoid(logits)
            return loss.detach(), p[:m].mean(), p[m:].mean()

    def _g_objective(self, logits: torch.Tensor) -> torch.Tensor:
        """G's loss from D's logits on G's samples (to be minimised)."""
        if self.config.optim.g_loss == "non_saturating":
            return F.softplus(-logits).mean()  # -log D(G(z))
        return -F.softplus(logits).mean()  # log(1 - D(G(z)))

    def _g_step(self, m: int, momentum: float) -> torch.Tensor:
        """One G update on fresh noise, scored by D with dropout; returns the loss."""
        logits = self._d(self._g(self.noise(m)), self.rngs["dropout"])
        loss = self._g_objective(logits)
        grads = torch.autograd.grad(loss, self.g_params)  # D's weight gradients are skipped
        self._sgd(self.g_params, self.g_velocity, grads, self.lr_g(), momentum)
        self.g_updates += 1
        return loss.detach()

    def _simultaneous_step(self, x: torch.Tensor, momentum: float) -> torch.Tensor:
        """One forward pass, then D and G updated together (the released code's SGD step).

        Returns [D loss, mean D(x), mean D(G(z)), G loss] as one tensor.
        """
        m = x.shape[0]
        fake = self._g(self.noise(m))
        logits = self._d(torch.cat([x, fake]), self.rngs["dropout"])
        d_loss = F.binary_cross_entropy_with_logits(logits, self._d_targets[: 2 * m])
        g_loss = self._g_objective(logits[m:])
        # Both gradients come from this one graph, before either net moves.
        d_grads = torch.autograd.grad(d_loss, self.d_params, retain_graph=True)
        g_grads = torch.autograd.grad(g_loss, self.g_params)
        self._sgd(self.d_params, self.d_velocity, d_grads, self.lr_d(), momentum)
        self._sgd(self.g_params, self.g_velocity, g_grads, self.lr_g(), momentum)
        self.d_updates += 1
        self.g_updates += 1
        with torch.no_grad():
            p = torch.sigmoid(logits)
            return torch.stack([d_loss, p[:m].mean(), p[m:].mean(), g_loss]).detach()

    # ------------------------------------------------------------------ epochs

    def run_epoch(self) -> EpochMetrics:
        """Train one epoch (and evaluate if it is an eval epoch); return its metrics."""
        cfg = self.config
        m, k = cfg.optim.batch_size, cfg.optim.k
        epoch = self.epoch + 1
        momentum = self.momentum(epoch)
        n_batches = self.train_x.shape[0] // m
        start = time.perf_counter()
        self.generator.train()
        self.discriminator.train()
        perm = torch.randperm(
            self.train_x.shape[0], generator=self.rngs["data"], device=self.device
        )
        d_sums = torch.zeros(3, device=self.device)  # loss, D(x), D(G(z))
        g_sum = torch.zeros((), device=self.device)
        first_bad = torch.full((), _NO_BAD_STEP, dtype=torch.int64, device=self.device)
        g_steps = 0
        simultaneous = cfg.optim.update == "simultaneous"
        # A compiled step keeps its saved tensors across the released rule's two gradients from
        # one forward pass (retain_graph), which donated buffers would forbid.
        captured = (
            torch._functorch.config.patch(donated_buffer=False)
            if cfg.compile
            else contextlib.nullcontext()
        )
        with captured:
            for step in range(1, n_batches + 1):
                x = self.train_x[perm[(step - 1) * m : step * m]]
                if simultaneous and (self.d_updates + 1) % k == 0:
                    stats = self._simultaneous_step(x, momentum)  # the k-th D step, joint with G
                    d_sums += stats[:3]
                    g_sum += stats[3]
                    g_steps += 1
                    bad = ~torch.isfinite(stats[0]) | ~torch.isfinite(stats[3])
                else:
                    d_stats = torch.stack(self._d_step(x, momentum))
                    d_sums += d_stats
                    bad = ~torch.isfinite(d_stats[0])
                    if not simultaneous and self.d_updates % k == 0:
                        g_loss = self._g_step(m, momentum)
                        g_sum += g_loss
                        g_steps += 1
                        bad |= ~torch.isfinite(g_loss)
                first_bad = torch.where(bad, first_bad.clamp(max=step), first_bad)
                if step % DIVERGENCE_CHECK_EVERY == 0:
                    self._raise_if_diverged(epoch, first_bad)
        self._raise_if_diverged(epoch, first_bad)
        self._raise_if_parameters_diverged(epoch, n_batches)
        seconds = time.perf_counter() - start

        d_mean = (d_sums / max(n_batches, 1)).tolist()
        metrics = EpochMetrics(
            epoch=epoch,
            d_loss=d_mean[0],
            g_loss=g_sum.item() / g_steps if g_steps else math.nan,
            d_real=d_mean[1],
            d_fake=d_mean[2],
            lr_d=self._last_lr(cfg.optim.lr_d, self.d_updates),
            lr_g=self._last_lr(cfg.optim.lr_g, self.g_updates),
            momentum=momentum,
            d_steps=n_batches,
            g_steps=g_steps,
            seconds=seconds,
        )
        if cfg.eval.every and epoch % cfg.eval.every == 0:
            metrics = self._with_evaluation(metrics)
        self.epoch = epoch
        self.history.append(metrics)
        return metrics

    def _raise_if_parameters_diverged(self, epoch: int, step: int) -> None:
        """DivergenceError if any weight of G or D is NaN or Inf after the epoch's last step."""
        for name, params in (("generator", self.g_params), ("discriminator", self.d_params)):
            norms = torch.stack(torch._foreach_norm(params))
            if not bool(torch.isfinite(norms).all()):
                raise _divergence(epoch, step, f"a {name} parameter is NaN or Inf")

    def _with_evaluation(self, metrics: EpochMetrics) -> EpochMetrics:
        """The epoch's metrics with its validation log-likelihood (sigma cross-validated) and,
        with a quality scorer, FID, classes covered and confidence of the same samples."""
        cfg = self.config
        t0 = time.perf_counter()
        samples = self.sample(cfg.eval.samples)
        result = self.evaluate(cfg.eval.samples, cfg.eval.n_valid, samples=samples)
        scores = {}
        if self.quality is not None:
            scores = self.quality.score(samples, f"epoch {metrics.epoch} samples").metrics()
            scores["classes_covered"] = int(scores["classes_covered"])
        return replace(
            metrics,
            valid_ll=result.valid_mean,
            valid_se=result.valid_se,
            sigma=result.sigma,
            eval_seconds=time.perf_counter() - t0,
            **scores,
        )

    def _last_lr(self, base: float, updates: int) -> float:
        o = self.config.optim
        return max(base / o.lr_decay ** max(updates - 1, 0), o.lr_min)

    def _raise_if_diverged(self, epoch: int, first_bad: torch.Tensor) -> None:
        step = int(first_bad.item())
        if step != _NO_BAD_STEP:
            raise _divergence(epoch, step, "a loss is NaN or Inf")

    def fit(
        self, epochs: int, callback: Callable[[EpochMetrics], bool | None] | None = None
    ) -> list[EpochMetrics]:
        """Train until `epochs` epochs are complete in total (so it resumes where it stopped).

        `callback` receives each epoch's metrics; returning True stops training early.
        Returns the metrics of the epochs run by this call.
        """
        ran: list[EpochMetrics] = []
        while self.epoch < epochs:
            metrics = self.run_epoch()
            ran.append(metrics)
            if callback is not None and callback(metrics):
                break
        return ran

    # ------------------------------------------------------------------ sampling, evaluation

    @torch.no_grad()
    def sample(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """n samples from G as a (n, d) float32 CPU tensor; noise from the `eval` stream."""
        rng = self.rngs["eval"] if rng is None else rng
        self.generator.eval()
        try:
            samples = generate(self.generator, self.noise_spec, n, rng, self.device)
        finally:
            self.generator.train()
        return samples if n else torch.empty(0, self.dataset.dim)

    def parzen_config(
        self, n_valid: int | None, sigmas: Sequence[float] | None = None
    ) -> ParzenConfig:
        """The Parzen protocol of this run's eval settings on the trainer's device."""
        return parzen_protocol(self.config, n_valid, sigmas, self.device)

    def evaluate(
        self,
        n_samples: int,
        n_valid: int | None,
        *,
        test: bool = False,
        samples: torch.Tensor | None = None,
        sigmas: tuple[float, ...] | None = None,
    ) -> Any:
        """Parzen-window log-likelihood of `n_samples` samples, sigma chosen on validation.

        Returns gansearch.parzen.ParzenResult (test fields filled when `test`). `samples`
        scores samples already drawn instead of drawing new ones; `sigmas` replaces the
        configured grid (`eval.sigmas`).
        """
        from gansearch.parzen import evaluate

        parzen = self.parzen_config(n_valid, sigmas)
        samples = self.sample(n_samples) if samples is None else samples
        return evaluate(
            samples, self.dataset.valid, self.dataset.test if test else None, config=parzen
        )

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically; only tensors and plain data."""
        cpu = torch.device("cpu")
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "dataset": {"name": self.dataset.name, "dim": self.dataset.dim},
            "epoch": self.epoch,
            "d_updates": self.d_updates,
            "g_updates": self.g_updates,
            "generator": {k: v.to(cpu) for k, v in self.generator.state_dict().items()},
            "discriminator": {k: v.to(cpu) for k, v in self.discriminator.state_dict().items()},
            "g_velocity": [v.to(cpu) for v in self.g_velocity],
            "d_velocity": [v.to(cpu) for v in self.d_velocity],
            "rng": {name: g.get_state() for name, g in self.rngs.items()},
            "history": [m.as_dict() for m in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (models, velocities, RNGs, counters)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise GansearchError(f"not a gansearch trainer checkpoint ({state.get('format')!r})")
        if state["dataset"]["dim"] != self.dataset.dim:
            raise GansearchError(
                f"checkpoint was trained on {state['dataset']['name']} "
                f"(d={state['dataset']['dim']}), not {self.dataset.name} (d={self.dataset.dim})"
            )
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        with torch.no_grad():
            for dst, src in zip(self.g_velocity, state["g_velocity"], strict=True):
                dst.copy_(src)
            for dst, src in zip(self.d_velocity, state["d_velocity"], strict=True):
                dst.copy_(src)
        for name, g in self.rngs.items():
            g.set_state(state["rng"][name])
        self.epoch = int(state["epoch"])
        self.d_updates = int(state["d_updates"])
        self.g_updates = int(state["g_updates"])
        self.history = [EpochMetrics(**m) for m in state["history"]]

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write the checkpoint atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "xb") as f:  # created with the user's umask
            torch.save(self.state_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        return path

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        dataset: Dataset,
        config: TrainConfig | None = None,
        quality: Any = None,
        may_change: tuple[str, ...] | None = None,
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint (loaded with weights_only=True).

        `config` replaces the stored configuration (e.g. a different device or eval setting);
        by default the stored one is used. With `may_change` (a subset of MUTABLE_SETTINGS) the
        new configuration may differ from the stored one only in those settings and
        RUN_SETTINGS, and training continues under the new values; anything else is an error.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise GansearchError(f"{path}: no such checkpoint") from None
        except pickle.UnpicklingError:  # torch's own words are a page long
            raise GansearchError(
                f"{path}: cannot read checkpoint: torch.load(weights_only=True) refused it "
                "(garbage, or objects other than tensors and plain data; nothing in it was run)"
            ) from None
        except Exception as exc:  # a truncated or foreign file
            raise GansearchError(f"{path}: cannot read checkpoint: {first_line(exc)}") from None
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise GansearchError(f"{path}: not a gansearch checkpoint (no stored configuration)")
        stored = config_from_dict(state["config"], source=f"{path} (stored config)")
        if config is None:
            config = stored
        elif may_change is not None:
            for key, (old, new) in changed_settings(stored, config).items():
                if key not in may_change:
                    raise ConfigError(
                        f"{path}: {key}: the checkpoint was trained with {old!r}; it cannot "
                        f"continue with {new!r} (settings that may change: "
                        f"{', '.join(may_change) or 'none'})"
                    )
        trainer = cls(config, dataset, quality)
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:  # missing or wrong tensors
            raise GansearchError(
                f"{path}: not a usable checkpoint ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        return trainer


def best_epoch(history: list[EpochMetrics]) -> EpochMetrics | None:
    """The evaluated epoch with the highest validation log-likelihood (the earliest on a tie).

    This is how gansearch chooses a checkpoint: on validation only, never on the test set.
    None if no epoch was evaluated.
    """
    best: EpochMetrics | None = None
    for m in history:
        if m.valid_ll is not None and math.isfinite(m.valid_ll):
            if best is None or m.valid_ll > best.valid_ll:  # type: ignore[operator]
                best = m
    return best


def _divergence(epoch: int, step: int, what: str) -> DivergenceError:
    """A DivergenceError carrying `epoch` and `step` (1-based step within the epoch)."""
    err = DivergenceError(f"training diverged at epoch {epoch}, step {step}: {what}")
    err.epoch = epoch  # type: ignore[attr-defined]
    err.step = step  # type: ignore[attr-defined]
    return err
