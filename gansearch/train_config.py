"""Typed training configuration: YAML loading, validation that names file and key, overrides.

A configuration is a frozen tree of small dataclasses whose defaults are the paper's MNIST
hyperparameters (goodfeli/adversarial, mnist.yaml). Every leaf has a dotted key such as
`optim.lr_d` or `discriminator.units`; :func:`apply_overrides` sets leaves by dotted key (what a
hyperparameter search does) and validates exactly as :func:`load_config` does, so a bad value is
reported as `SOURCE: KEY: problem` before any training starts.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from gansearch.devices import DEVICE_PATTERN, DEVICE_RULE
from gansearch.parzen import DEFAULT_SIGMAS, FINE_SIGMAS
from gansearch.schema import (
    Bool,
    Float,
    Int,
    Says,
    Str,
    build,
    fail,
    json_schema,
    read_yaml,
    settings,
)

NoiseKind = Literal["uniform", "gaussian"]
GLoss = Literal["non_saturating", "minimax"]
UpdateRule = Literal["alternating", "simultaneous"]
OutputBias = Literal["marginals", "zero"]
Precision = Literal["float32", "float64"]

Width = Annotated[Int, Field(ge=1)]  # units of one layer
KeepProb = Annotated[Float, Field(gt=0, le=1)]
Sigma = Annotated[Float, Field(gt=0)]
AllOr = Annotated[Int | None, Says(null="all")]  # a count of examples, or null for all


@settings
class DataConfig:
    """Which data set (as `gansearch.data.load_dataset` names it) and, for TFD, which fold."""

    name: Str = Field("mnist", pattern=r"^.+$", description="the name of a data set")
    fold: Int = Field(0, ge=0)


@settings
class GeneratorConfig:
    """MLP generator: noise -> ReLU layers -> sigmoid pixels."""

    noise_dim: Int = Field(100, ge=1)
    noise: NoiseKind = "gaussian"
    """Gaussian N(0, noise_scale^2), as the released MNIST run drew it (its Generator's
    default), or uniform in [-noise_scale, noise_scale]."""
    noise_scale: Float | None = Field(None, gt=0)
    """None: unit variance (std 1 for gaussian, sqrt(3) for uniform)."""
    units: tuple[Width, ...] = (1200, 1200)
    """One entry per ReLU layer."""
    init_range: Float = Field(0.05, ge=0)
    """Weights uniform in [-init_range, init_range]."""
    output_bias: OutputBias = "marginals"
    """Logit of the training set's mean pixels, or zero."""


@settings
class DiscriminatorConfig:
    """Maxout discriminator with dropout on every layer's input (pylearn2's dropout_fprop)."""

    units: tuple[Width, ...] = (240, 240)
    """One entry per maxout layer."""
    pieces: Int = Field(5, ge=1)
    init_range: Float = Field(0.005, ge=0)
    keep_probs: tuple[KeepProb, ...] = (0.8, 0.5, 0.5)
    """Keep-probability of the input of each maxout layer, then of the output layer's input."""


@settings
class OptimConfig:
    """Algorithm 1 with pylearn2's SGD + momentum, ExponentialDecay and MomentumAdjustor."""

    batch_size: Int = Field(100, ge=1)
    update: UpdateRule = "simultaneous"
    """simultaneous (default): the released code (pylearn2 SGD + AdversaryCost2): every k-th D
    step is one forward pass with D and G both updated from the same noise, samples and dropout
    masks, G's gradient through the pre-update D. alternating: Algorithm 1 read literally (k D
    steps, then one G step on fresh noise against the updated D); it collapses on MNIST with the
    released hyperparameters (docs/benchmarks.md)."""
    k: Int = Field(1, ge=1)
    """Discriminator steps per generator step."""
    g_loss: GLoss = "non_saturating"
    """-log D(G(z)); "minimax" is log(1 - D(G(z)))."""
    lr_d: Float = Field(0.1, gt=0)
    lr_g: Float = Field(0.1, gt=0)
    lr_decay: Float = Field(1.000004, ge=1)
    """The learning rate is divided by lr_decay after every update of that net."""
    lr_min: Float = Field(1e-6, ge=0)
    momentum_start: Float = Field(0.5, ge=0, lt=1)
    momentum_end: Float = Field(0.7, ge=0, lt=1)
    momentum_start_epoch: Int = Field(1, ge=0)
    """momentum_start during this epoch (1-based) and before; momentum_end from the saturate
    epoch on."""
    momentum_saturate_epoch: Int = 250


@settings
class EvalConfig:
    """Parzen-window evaluation during training (cheap) and at the end (Table 1 protocol)."""

    every: Int = Field(1, ge=0)
    """Epochs between validation evaluations; 0 turns them off."""
    samples: Int = Field(10_000, ge=1)
    n_valid: AllOr = Field(1000, ge=1)
    """First n validation examples."""
    final_samples: Int = Field(10_000, ge=1)
    final_n_valid: AllOr = Field(1000, ge=1)
    sigmas: tuple[Sigma, ...] = Field(DEFAULT_SIGMAS, min_length=1)
    """The grid that chooses sigma (and the epoch)."""
    fine_sigmas: tuple[Sigma, ...] = Field(FINE_SIGMAS, min_length=1)
    """The final evaluation also reports sigma chosen on this finer grid (same validation
    images)."""
    quality: Bool = False
    """FID, classes covered and confidence of the samples at eval epochs."""
    keep_checkpoints: Bool = False
    """`gansearch train` also keeps every evaluated epoch's checkpoint (epoch-NNNN.pt), as the
    released run saved every epoch; for studying a run afterwards, not for choosing on test."""
    precision: Precision = "float32"
    grid_rows: Int = Field(10, ge=1)
    grid_cols: Int = Field(10, ge=1)

    def sigma_grids(self) -> dict[str, tuple[float, ...]]:
        """The grids a final evaluation reports, by name: the released one, then the fine one."""
        return {"released": self.sigmas, "fine": self.fine_sigmas}


@settings
class TrainConfig:
    """One training run: every hyperparameter of the model, the game and its evaluation."""

    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    epochs: Int = Field(250, ge=0)
    seed: Int = Field(0, ge=0)
    device: Str = Field("cpu", pattern=f"^({DEVICE_PATTERN})$", description=DEVICE_RULE)
    compile: Bool = False
    """Capture G's and D's forward and backward passes with torch.compile: the same training
    within float tolerance, fewer kernel launches on a GPU. Off until a GPU figure shows it pays
    (docs/gpu.md); compiling costs seconds at the first step."""


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a training configuration file (each field's type, choices and
    bounds; the rules across fields are :func:`validate`'s)."""
    return json_schema(TrainConfig, "gansearch training configuration")


# ----------------------------------------------------------------------------- YAML


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a YAML configuration; missing keys take the paper's defaults."""
    raw = read_yaml(path)
    if raw is None or raw == {}:
        fail(
            str(path),
            "",
            "is empty: a training configuration names the settings it changes from the "
            "paper's (configs/mnist_paper.yaml lists them all)",
        )
    return config_from_dict(raw, str(path))


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


def validate(config: TrainConfig, source: str = "<config>") -> None:
    """Raise ConfigError naming the first rule that spans several fields and does not hold (each
    field's own type, choices and bounds hold in any built configuration)."""
    d, o = config.discriminator, config.optim
    if len(d.keep_probs) != len(d.units) + 1:
        fail(
            source,
            "discriminator.keep_probs",
            f"needs {len(d.units) + 1} entries (one per maxout layer plus the output layer) for "
            f"{len(d.units)} maxout layers, got {len(d.keep_probs)}",
        )
    if o.momentum_saturate_epoch < o.momentum_start_epoch:
        fail(
            source,
            "optim.momentum_saturate_epoch",
            f"must be >= optim.momentum_start_epoch ({o.momentum_start_epoch}), "
            f"got {o.momentum_saturate_epoch}",
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
RUN_SETTINGS = ("epochs", "device", "compile", "eval.")


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
