"""`gansearch curves` (gansearch.commands.curves) of a pbt population, with its copies and a
divergence; the search is conftest's `diverged_pbt_search`."""

from __future__ import annotations

from pathlib import Path

import pytest

from gansearch.experiment import read_results


@pytest.mark.slow
def test_curves_draw_a_population_with_its_copies_and_divergence(
    diverged_pbt_search: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from gansearch.cli import main
    from gansearch.commands.curves import search_segments

    experiment = diverged_pbt_search / "pbt-diverge"
    curves = search_segments(experiment, "pbt")
    assert len(curves) == 4
    (label,) = [name for name in curves if name.endswith("00001")]
    diverged, replacement, *_ = curves[label]
    assert diverged.diverged_at == 3 and [p[0] for p in diverged.points] == [1, 2]
    donor, epoch = replacement.copied_from
    assert donor in curves and donor != label and replacement.points[0][0] > epoch
    lineage = read_results(experiment).set_index("trial_id")["lineage"]
    copies = sum(len(s) - 1 for s in curves.values())
    assert copies == sum(len(v.split("; ")) for v in lineage if v)  # one segment per copy

    out = tmp_path / "population.png"
    assert main(["curves", str(experiment), "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 600
