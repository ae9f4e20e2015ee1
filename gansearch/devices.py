"""Which torch device a setting names: one rule for the trainer, the Parzen estimator and the
command line (`cpu`, `cuda`, `cuda:N`, `mps` or `auto`)."""

from __future__ import annotations

import re

import torch

from gansearch.errors import UsageError

DEVICE_PATTERN = r"cpu|auto|cuda(:\d+)?|mps"
DEVICE_RULE = "cpu, cuda, cuda:N, mps or auto"


def resolve_device(name: str, what: str = "device") -> torch.device:
    """The device `name` names; `auto` picks CUDA when available. A name outside the rule, or
    an accelerator this machine lacks, is a UsageError naming `what` (a setting or an option)."""
    if not isinstance(name, str) or re.fullmatch(DEVICE_PATTERN, name) is None:
        raise UsageError(f"{what}: must be {DEVICE_RULE}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{what}: {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"{what}: {name!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{what}: 'mps' requested but Apple's MPS is not available")
    return device
