"""Devices (gansearch.devices): a device no setting can name is refused with the rule."""

from __future__ import annotations

import pytest

from gansearch.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("device", ["bogus", "meta"])
def test_train_and_evaluate_refuse_unknown_devices(tmp_path, capsys, device):
    args = ["train", "--config", "configs/digits_quick.yaml", "--out", str(tmp_path / "o")]
    assert main([*args, "--device", device]) == 2
    assert "device: must be cpu, cuda, cuda:N, mps or auto" in _err(capsys)
