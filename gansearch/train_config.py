"""Typed training configuration: YAML loading, validation that names file and key, overrides.

A configuration is a frozen tree of small dataclasses whose defaults are the paper's MNIST
hyperparameters (goodfeli/adversarial, mnist.yaml). Every leaf has a dotted key such as
`optim.lr_d` or `discriminator.units`; :func:`apply_overrides` sets leaves by dotted key (what a
hyperparameter search does) and validates exactly as :func:`load_config` does, so a bad value is
reported as `SOURCE: KEY: problem` before any training starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gansearch.parzen import DEFAULT_SIGMAS, FINE_SIGMAS
from gansearch.schema import build, fail, read_yaml

NOISE_KINDS = ("uniform", "gaussian")
G_LOSSES = ("non_saturating", "minimax")
UPDATE_RULES = ("alternating", "simultaneous")
OUTPUT_BIASES = ("marginals", "zero")
PRECISIONS = ("float32", "float64")


@dataclass(frozen=True)
class DataConfig:
    """Which data set (as `gansearch.data.load_dataset` names it) and, for TFD, which fold."""

    name: str = "mnist"
    fold: int = 0


@dataclass(frozen=True)
class GeneratorConfig:
    """MLP generator: noise -> ReLU layers -> sigmoid pixels."""

    noise_dim: int = 100
    # gaussian N(0, noise_scale^2), as the released MNIST run drew it (its Generator's default),
    # or uniform in [-noise_scale, noise_scale].
    noise: str = "gaussian"
    # None: unit variance (std 1 for gaussian, sqrt(3) for uniform).
    noise_scale: float | None = None
    units: tuple[int, ...] = (1200, 1200)  # one entry per ReLU layer
    init_range: float = 0.05  # weights uniform in [-init_range, init_range], biases 0
    output_bias: str = "marginals"  # logit of the training set's mean pixels, or zero


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Maxout discriminator with dropout on every layer's input (pylearn2's dropout_fprop)."""

    units: tuple[int, ...] = (240, 240)  # one entry per maxout layer
    pieces: int = 5
    init_range: float = 0.005
    # Keep-probability of the input of each maxout layer, then of the output layer's input.
    keep_probs: tuple[float, ...] = (0.8, 0.5, 0.5)


@dataclass(frozen=True)
class OptimConfig:
    """Algorithm 1 with pylearn2's SGD + momentum, ExponentialDecay and MomentumAdjustor."""

    batch_size: int = 100
    # simultaneous (default): the released code (pylearn2 SGD + AdversaryCost2): every k-th D step
    # is one forward pass with D and G both updated from the same noise, samples and dropout
    # masks, G's gradient through the pre-update D. alternating: Algorithm 1 read literally (k D
    # steps, then one G step on fresh noise against the updated D); it collapses on MNIST with
    # the released hyperparameters (docs/benchmarks.md).
    update: str = "simultaneous"
    k: int = 1  # discriminator steps per generator step
    g_loss: str = "non_saturating"  # -log D(G(z)); "minimax" is log(1 - D(G(z)))
    lr_d: float = 0.1
    lr_g: float = 0.1
    lr_decay: float = 1.000004  # learning rate divided by this after every update of that net
    lr_min: float = 1e-6
    momentum_start: float = 0.5
    momentum_end: float = 0.7
    momentum_start_epoch: int = 1  # momentum_start during this epoch (1-based) and before
    momentum_saturate_epoch: int = 250  # momentum_end from this epoch on


@dataclass(frozen=True)
class EvalConfig:
    """Parzen-window evaluation during training (cheap) and at the end (Table 1 protocol)."""

    every: int = 1  # epochs between validation evaluations; 0 turns them off
    samples: int = 10_000
    n_valid: int | None = 1000  # first n validation examples; null = all
    final_samples: int = 10_000
    final_n_valid: int | None = 1000
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS  # the grid that chooses sigma (and the epoch)
    # The final evaluation also reports sigma chosen on this finer grid (same validation images).
    fine_sigmas: tuple[float, ...] = FINE_SIGMAS
    quality: bool = False  # FID, classes covered and confidence of the samples at eval epochs
    # `gansearch train` also keeps every evaluated epoch's checkpoint (epoch-NNNN.pt), as the
    # released run saved every epoch; for studying a run afterwards, not for choosing on test.
    keep_checkpoints: bool = False
    precision: str = "float32"
    grid_rows: int = 10
    grid_cols: int = 10

    def sigma_grids(self) -> dict[str, tuple[float, ...]]:
        """The grids a final evaluation reports, by name: the released one, then the fine one."""
        return {"released": self.sigmas, "fine": self.fine_sigmas}


@dataclass(frozen=True)
class TrainConfig:
    """One training run: every hyperparameter of the model, the game and its evaluation."""

    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    epochs: int = 250
    seed: int = 0
    device: str = "cpu"  # cpu, cuda, cuda:N or auto


# ----------------------------------------------------------------------------- YAML


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a YAML configuration; missing keys take the paper's defaults."""
    raw = read_yaml(path)
    return config_from_dict({} if raw is None else raw, str(path))


# ----------------------------------------------------------------------------- typed parsing


def config_from_dict(raw: Mapping[str, Any], source: str = "<config>") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from nested plain data (e.g. parsed YAML)."""
    config = build(TrainConfig, raw, "", source)
    validate(config, source)
    return config


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Nested plain data (dicts, lists, numbers, strings) that `config_from_dict` reads back."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(config)


def config_keys() -> list[str]:
    """Every valid dotted key, e.g. `optim.lr_d` or `discriminator.units`, in definition order."""

    def walk(cls: type, prefix: str) -> list[str]:
        hints = typing.get_type_hints(cls)
        keys: list[str] = []
        for f in dataclasses.fields(cls):
            full = f"{prefix}{f.name}"
            tp = hints[f.name]
            keys += walk(tp, full + ".") if dataclasses.is_dataclass(tp) else [full]
        return keys

    return walk(TrainConfig, "")


def apply_overrides(
    config: TrainConfig, overrides: Mapping[str, Any], source: str = "overrides"
) -> TrainConfig:
    """Return a copy of `config` with leaves set by dotted key, validated as a file would be.

    Overrides are applied together and then validated, so changing `discriminator.units` and
    `discriminator.keep_probs` at once is fine.
    """
    raw = config_to_dict(config)
    valid = set(config_keys())
    for key, value in overrides.items():
        if key not in valid:
            fail(source, key, "unknown key (see gansearch.train_config.config_keys())")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return config_from_dict(raw, source)


# ----------------------------------------------------------------------------- value checks


def _check(ok: bool, source: str, key: str, message: str) -> None:
    if not ok:
        fail(source, key, message)


def _finite(x: float) -> bool:
    return math.isfinite(x)


def validate(config: TrainConfig, source: str = "<config>") -> None:
    """Raise ConfigError naming the first impossible value (types are checked when parsing)."""
    c = config
    _check(c.data.name != "", source, "data.name", "must name a data set")
    _check(c.data.fold >= 0, source, "data.fold", f"must be >= 0, got {c.data.fold}")

    g = c.generator
    _check(g.noise_dim >= 1, source, "generator.noise_dim", f"must be >= 1, got {g.noise_dim}")
    _check(
        g.noise in NOISE_KINDS,
        source,
        "generator.noise",
        f"must be one of {', '.join(NOISE_KINDS)}, got {g.noise!r}",
    )
    _check(
        g.noise_scale is None or (_finite(g.noise_scale) and g.noise_scale > 0),
        source,
        "generator.noise_scale",
        f"must be > 0, got {g.noise_scale}",
    )
    for i, u in enumerate(g.units):
        _check(u >= 1, source, f"generator.units[{i}]", f"must be >= 1, got {u}")
    _check(
        _finite(g.init_range) and g.init_range >= 0,
        source,
        "generator.init_range",
        f"must be >= 0, got {g.init_range}",
    )
    _check(
        g.output_bias in OUTPUT_BIASES,
        source,
        "generator.output_bias",
        f"must be one of {', '.join(OUTPUT_BIASES)}, got {g.output_bias!r}",
    )

    d = c.discriminator
    for i, u in enumerate(d.units):
        _check(u >= 1, source, f"discriminator.units[{i}]", f"must be >= 1, got {u}")
    _check(d.pieces >= 1, source, "discriminator.pieces", f"must be >= 1, got {d.pieces}")
    _check(
        _finite(d.init_range) and d.init_range >= 0,
        source,
        "discriminator.init_range",
        f"must be >= 0, got {d.init_range}",
    )
    for i, p in enumerate(d.keep_probs):
        _check(
            0.0 < p <= 1.0, source, f"discriminator.keep_probs[{i}]", f"must be in (0, 1], got {p}"
        )
    _check(
        len(d.keep_probs) == len(d.units) + 1,
        source,
        "discriminator.keep_probs",
        f"needs {len(d.units) + 1} entries (one per maxout layer plus the output layer) for "
        f"{len(d.units)} maxout layers, got {len(d.keep_probs)}",
    )

    o = c.optim
    _check(o.batch_size >= 1, source, "optim.batch_size", f"must be >= 1, got {o.batch_size}")
    _check(o.k >= 1, source, "optim.k", f"must be >= 1, got {o.k}")
    _check(
        o.update in UPDATE_RULES,
        source,
        "optim.update",
        f"must be one of {', '.join(UPDATE_RULES)}, got {o.update!r}",
    )
    _check(
        o.g_loss in G_LOSSES,
        source,
        "optim.g_loss",
        f"must be one of {', '.join(G_LOSSES)}, got {o.g_loss!r}",
    )
    for name in ("lr_d", "lr_g"):
        v = getattr(o, name)
        _check(_finite(v) and v > 0, source, f"optim.{name}", f"must be > 0, got {v}")
    _check(
        _finite(o.lr_decay) and o.lr_decay >= 1.0,
        source,
        "optim.lr_decay",
        f"must be >= 1, got {o.lr_decay}",
    )
    _check(
        _finite(o.lr_min) and o.lr_min >= 0, source, "optim.lr_min", f"must be >= 0, got {o.lr_min}"
    )
    for name in ("momentum_start", "momentum_end"):
        v = getattr(o, name)
        _check(0.0 <= v < 1.0, source, f"optim.{name}", f"must be in [0, 1), got {v}")
    _check(
        o.momentum_start_epoch >= 0,
        source,
        "optim.momentum_start_epoch",
        f"must be >= 0, got {o.momentum_start_epoch}",
    )
    _check(
        o.momentum_saturate_epoch >= o.momentum_start_epoch,
        source,
        "optim.momentum_saturate_epoch",
        f"must be >= optim.momentum_start_epoch ({o.momentum_start_epoch}), "
        f"got {o.momentum_saturate_epoch}",
    )

    e = c.eval
    _check(e.every >= 0, source, "eval.every", f"must be >= 0, got {e.every}")
    for name in ("samples", "final_samples", "grid_rows", "grid_cols"):
        v = getattr(e, name)
        _check(v >= 1, source, f"eval.{name}", f"must be >= 1, got {v}")
    for name in ("n_valid", "final_n_valid"):
        v = getattr(e, name)
        _check(v is None or v >= 1, source, f"eval.{name}", f"must be >= 1 or null, got {v}")
    for name in ("sigmas", "fine_sigmas"):
        grid = getattr(e, name)
        _check(len(grid) >= 1, source, f"eval.{name}", "must list at least one sigma")
        for i, s in enumerate(grid):
            _check(_finite(s) and s > 0, source, f"eval.{name}[{i}]", f"must be > 0, got {s}")
    _check(
        e.precision in PRECISIONS,
        source,
        "eval.precision",
        f"must be one of {', '.join(PRECISIONS)}, got {e.precision!r}",
    )

    _check(c.epochs >= 0, source, "epochs", f"must be >= 0, got {c.epochs}")
    _check(c.seed >= 0, source, "seed", f"must be >= 0, got {c.seed}")
    _check(
        re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", c.device) is not None,
        source,
        "device",
        f"must be cpu, cuda, cuda:N, mps or auto, got {c.device!r}",
    )


# Settings a checkpoint may continue under with new values: they steer the updates (read afresh
# every step or epoch) but leave the networks' shapes alone. Population-based training changes
# them between epochs.
MUTABLE_SETTINGS = (
    "optim.lr_d",
    "optim.lr_g",
    "optim.k",
    "optim.momentum_start",
    "optim.momentum_end",
    "discriminator.keep_probs",
)
# Settings that do not change what is trained: how long, where, and how it is evaluated.
RUN_SETTINGS = ("epochs", "device", "eval.")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_settings(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The dotted settings (outside RUN_SETTINGS) whose values differ: key -> (old, new)."""
    before, after = _flatten(config_to_dict(old)), _flatten(config_to_dict(new))
    return {
        key: (before.get(key), value)
        for key, value in after.items()
        if not (key in RUN_SETTINGS or key.startswith(RUN_SETTINGS)) and before.get(key) != value
    }
