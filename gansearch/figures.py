"""Figures: sample grids in the style of the paper's Figure 2 (PNG, Pillow), a search's Pareto
front, training curves and a search population's curves (matplotlib, Agg).

A sample grid shows random samples; beside the last column, outlined in yellow, the training
example nearest (in Euclidean pixel distance) to each sample of that column, showing that the
model does not simply memorise the training set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gansearch.files import atomic_path

HIGHLIGHT = (255, 210, 0)  # yellow outline of the nearest training examples, as in Figure 2


def nearest_rows(queries: np.ndarray, reference: np.ndarray, block: int = 8192) -> np.ndarray:
    """Index of the row of `reference` nearest to each row of `queries` (squared L2)."""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    best_d = torch.full((len(q),), float("inf"))
    best_i = torch.zeros(len(q), dtype=torch.int64)
    for start in range(0, len(reference), block):
        r = torch.from_numpy(np.array(reference[start : start + block], dtype=np.float32))
        d = torch.cdist(q, r).pow_(2) if len(r) else torch.empty(len(q), 0)
        val, idx = d.min(dim=1)
        better = val < best_d
        best_d = torch.where(better, val, best_d)
        best_i = torch.where(better, idx + start, best_i)
    return best_i.numpy()


def _to_image(row: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """One example as an (h, w, 3) uint8 array; grey images are repeated over 3 channels."""
    img = np.clip(np.asarray(row, dtype=np.float32).reshape(tuple(image_shape)), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"cannot draw images of shape {tuple(image_shape)}")
    return (img * 255.0 + 0.5).astype(np.uint8)


def sample_grid(
    samples: np.ndarray,
    image_shape: Sequence[int],
    train: np.ndarray | None,
    rows: int,
    cols: int,
    path: str | os.PathLike[str],
    *,
    scale: int | None = None,
    pad: int = 2,
) -> Path:
    """Write `rows` x `cols` samples (row-major, first rows*cols of `samples`) as a PNG.

    With `train`, a further column shows the training example nearest to each sample of the last
    column, outlined in yellow. `scale` enlarges each pixel (default: images at least 28 px high).
    """
    samples = np.asarray(samples)
    if len(samples) < rows * cols:
        raise ValueError(f"need {rows * cols} samples for a {rows}x{cols} grid, got {len(samples)}")
    h, w = int(image_shape[0]), int(image_shape[1])
    scale = scale or max(1, -(-28 // h))
    extra = 1 if train is not None else 0
    cell_h, cell_w = h + 2 * pad, w + 2 * pad
    gap = 2 * pad if extra else 0
    canvas = np.full((rows * cell_h, (cols + extra) * cell_w + gap, 3), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = r * cell_h + pad, c * cell_w + pad
            canvas[y : y + h, x : x + w] = _to_image(samples[r * cols + c], image_shape)
    if train is not None:
        last = samples[[r * cols + cols - 1 for r in range(rows)]].reshape(rows, -1)
        nearest = nearest_rows(last, np.asarray(train).reshape(len(train), -1))
        x = cols * cell_w + gap + pad
        for r, i in enumerate(nearest):
            y = r * cell_h + pad
            canvas[y - pad : y + h + pad, x - pad : x + w + pad] = HIGHLIGHT
            canvas[y : y + h, x : x + w] = _to_image(train[i], image_shape)
    image = Image.fromarray(canvas, mode="RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def pareto_plot(
    values: np.ndarray,
    on_front: np.ndarray,
    labels: Sequence[str],
    metrics: Sequence[str],
    modes: Sequence[str],
    path: Path,
    title: str,
) -> Path:
    """Scatter of every trial's final objective values (the first two objectives), the Pareto
    front highlighted, joined in order and labelled with trial ids; written as PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=np.float64)
    on_front = np.asarray(on_front, dtype=bool)
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    ok = ~np.isnan(values[:, :2]).any(axis=1)
    rest = ok & ~on_front
    axes.scatter(values[rest, 0], values[rest, 1], color="0.6", s=18, label="other trials")
    front = values[on_front]
    order = np.argsort(front[:, 0])
    axes.plot(front[order, 0], front[order, 1], color="tab:red", marker="o", label="Pareto front")
    for (x, y), label in zip(front[:, :2], np.asarray(labels)[on_front], strict=True):
        axes.annotate(str(label), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    setters = (axes.set_xlabel, axes.set_ylabel)
    for setter, metric, mode in zip(setters, metrics[:2], modes[:2], strict=True):
        setter(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    extra = f" (first 2 of {len(metrics)} objectives)" if len(metrics) > 2 else ""
    axes.set_title(title + extra, fontsize=10)
    axes.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


def training_curves(
    runs: dict[str, Sequence[Any]],
    path: Path,
    title: str,
    references: dict[str, float] | None = None,
    ll_limits: tuple[float, float] | None = None,
) -> Path:
    """Validation log-likelihood (with its standard error) and, where measured, FID against
    epoch, one line per run (label -> its EpochMetrics history); each run's best validation
    epoch is circled, and `references` (label -> value) are drawn as horizontal lines on the
    log-likelihood panel, whose range `ll_limits` sets. Written as PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from gansearch.trainer import best_epoch

    with_fid = any(m.fid is not None for history in runs.values() for m in history)
    figure = Figure(figsize=(12 if with_fid else 6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if with_fid else 1)
    ll = panels[0] if with_fid else panels
    for (label, history), colour in zip(runs.items(), _COLOURS, strict=False):
        evaluated = [m for m in history if m.valid_ll is not None]
        if not evaluated:
            continue
        epochs = [m.epoch for m in evaluated]
        ll.errorbar(
            epochs,
            [m.valid_ll for m in evaluated],
            yerr=[m.valid_se or 0.0 for m in evaluated],
            color=colour,
            marker="o",
            markersize=3,
            capsize=2,
            label=label,
        )
        best = best_epoch(evaluated)
        if best is not None:
            ll.plot(best.epoch, best.valid_ll, "o", color=colour, markersize=11, fillstyle="none")
        if with_fid:
            scored = [m for m in evaluated if m.fid is not None]
            panels[1].plot(
                [m.epoch for m in scored],
                [m.fid for m in scored],
                color=colour,
                marker="o",
                markersize=3,
                label=label,
            )
    for (label, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        ll.axhline(value, color="0.4", linestyle=style, linewidth=1, label=label)
    ll.set_xlabel("epoch")
    ll.set_ylabel("validation Parzen log-likelihood (nats)")
    ll.set_title("validation log-likelihood (circled: best epoch)", fontsize=10)
    if ll_limits is not None:
        ll.set_ylim(*ll_limits)
    ll.legend(fontsize="small")
    if with_fid:
        panels[1].set_xlabel("epoch")
        panels[1].set_ylabel("FID (lower is better)")
        panels[1].set_yscale("log")
        panels[1].set_title("FID of the same samples", fontsize=10)
        panels[1].legend(fontsize="small")
    figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


@dataclass(frozen=True)
class Segment:
    """Part of a search trial's learning curve trained from one state: `points` are its
    evaluations (epoch, validation log-likelihood, its standard error, FID or None); a segment
    that began from another trial's checkpoint names it in `copied_from` (label, epoch), and
    `diverged_at` is the epoch its state diverged, if it did."""

    points: tuple[tuple[int, float, float, float | None], ...]
    copied_from: tuple[str, int] | None = None
    diverged_at: int | None = None


def population_curves(
    trials: dict[str, list[Segment]],
    path: Path,
    title: str,
    runs: dict[str, Sequence[Any]] | None = None,
    references: dict[str, float] | None = None,
    ll_limits: tuple[float, float] | None = None,
) -> Path:
    """A search's trials as learning curves: validation log-likelihood and, where measured, FID
    against epoch, one colour per trial. A copy (population-based training) is a dotted line
    from the copied trial's point to the first evaluation after it, marked with a triangle; a
    divergence is a red cross. `runs` (label -> EpochMetrics history, `gansearch train` runs
    such as the paper's configuration) are drawn beside them in black and greys, each with a
    line style of its own, and `references` (label -> value) as horizontal lines; `ll_limits`
    sets the log-likelihood axis's range. Written as PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with_fid = any(p[3] is not None for s in trials.values() for g in s for p in g.points) or any(
        m.fid is not None for history in (runs or {}).values() for m in history
    )
    figure = Figure(figsize=(13 if with_fid else 7, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if with_fid else 1)
    ll = panels[0] if with_fid else panels
    fid = panels[1] if with_fid else None
    for (label, history), (grey, line) in zip((runs or {}).items(), _RUN_STYLES, strict=False):
        evaluated = [m for m in history if m.valid_ll is not None]
        style = {"color": grey, "linestyle": line, "linewidth": 1.4, "label": label}
        ll.plot([m.epoch for m in evaluated], [m.valid_ll for m in evaluated], **style)
        if fid is not None:
            scored = [m for m in evaluated if m.fid is not None]
            fid.plot([m.epoch for m in scored], [m.fid for m in scored], **style)
    _draw_population(ll, fid, trials)
    for (label, value), style in zip((references or {}).items(), ("-.", ":", "--"), strict=False):
        ll.axhline(value, color="0.45", linestyle=style, linewidth=1, label=label)
    ll.plot([], [], ">:", color="0.3", label="copied a trial's checkpoint (pbt)")
    if any(g.diverged_at is not None for segs in trials.values() for g in segs):
        ll.plot([], [], "x", color="red", mew=2, label="diverged")
    ll.set_xlabel("epoch")
    ll.set_ylabel("validation Parzen log-likelihood (nats)")
    ll.set_title("validation log-likelihood", fontsize=10)
    if ll_limits is not None:
        ll.set_ylim(*ll_limits)
    ll.legend(fontsize="x-small")
    if fid is not None:
        fid.set_xlabel("epoch")
        fid.set_ylabel("FID (lower is better)")
        fid.set_yscale("log")
        fid.set_title("FID of the same samples", fontsize=10)
    figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


def _draw_population(ll: Any, fid: Any, trials: dict[str, list[Segment]]) -> None:
    """Each trial's segments on the log-likelihood (and FID) axes: one colour a trial, a copy's
    dotted line from the copied point, a divergence's red cross."""
    colours = dict(zip(trials, _COLOURS * (len(trials) // len(_COLOURS) + 1), strict=False))
    where = {  # (label, epoch) -> its point, for the copies' connecting lines
        (label, p[0]): p for label, segs in trials.items() for g in segs for p in g.points
    }
    for label, segments in trials.items():
        colour = colours[label]
        labelled = False
        for i, segment in enumerate(segments):
            points = segment.points
            if points:
                epochs = [p[0] for p in points]
                ll.plot(
                    epochs,
                    [p[1] for p in points],
                    color=colour,
                    marker="o",
                    markersize=2.5,
                    linewidth=1.2,
                    label=None if labelled else label,
                )
                labelled = True
                if fid is not None:
                    scored = [p for p in points if p[3] is not None]
                    fid.plot([p[0] for p in scored], [p[3] for p in scored], color=colour)
            source = segment.copied_from and where.get(segment.copied_from)
            if source and points:
                first = points[0]
                ll.plot([source[0], first[0]], [source[1], first[1]], ":", color=colour)
                ll.plot(source[0], source[1], ">", color=colour, markersize=7)
                if fid is not None and source[3] is not None and first[3] is not None:
                    fid.plot([source[0], first[0]], [source[3], first[3]], ":", color=colour)
            if segment.diverged_at is not None:  # at its last evaluation, or the next one
                after = [p for g in segments[i:] for p in g.points]
                if after:
                    y = (points or after)[-1 if points else 0][1]
                    ll.plot(segment.diverged_at, y, "x", color="red", markersize=9, mew=2)


def budget_curves(
    curves: dict[str, Any],
    path: Path,
    title: str,
    metric: str,
    references: dict[str, float] | None = None,
) -> Path:
    """The best `metric` found against trial-epochs spent, one step line per search (label ->
    DataFrame with columns trial_epochs and best, as search.budget_curve makes it), the point
    where each reached its final best marked; `references` as horizontal lines. PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    styles = ((3.2, "-"), (2.0, "--"), (1.4, "-"), (1.2, ":"), (1.0, "-."), (1.0, "-"))
    for (label, curve), colour, (width, style) in zip(
        curves.items(), _COLOURS, styles, strict=False
    ):
        found = curve.dropna(subset=["best"])
        if found.empty:
            continue
        # Searches that start from the same configurations share their first steps: widths and
        # dashes keep every line visible where they overlap.
        axes.step(
            found["trial_epochs"],
            found["best"],
            where="post",
            color=colour,
            linewidth=width,
            linestyle=style,
            label=label,
        )
        first = found[found["best"] == found["best"].iloc[-1]].iloc[0]
        axes.plot(first["trial_epochs"], first["best"], "o", color=colour, markersize=6)
    for (label, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        axes.axhline(value, color="0.4", linestyle=style, linewidth=1, label=label)
    axes.set_xlabel("trial-epochs spent (epochs trained, all trials together)")
    axes.set_ylabel(f"best {metric} so far")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path


_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
# Train runs beside a population: (colour, line style), distinct in colour and in print.
_RUN_STYLES = (("black", "-"), ("0.45", "--"), ("0.45", ":"), ("0.7", "-."), ("0.7", "--"))


def importance_plot(table: Any, path: Path, title: str) -> Path:
    """Horizontal bars of each parameter's importance, one panel per objective, one bar per
    evaluator (the `importance.importances` table); written as PNG (Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objectives = list(dict.fromkeys(table["objective"]))
    figure = Figure(figsize=(6.4, 1.2 + 2.6 * len(objectives)), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(objectives), 1, squeeze=False)[:, 0]
    for axes, objective in zip(panels, objectives, strict=True):
        group = table[table["objective"] == objective]
        wide = group.pivot(index="param", columns="evaluator", values="importance").fillna(0.0)
        wide = wide.sort_values(wide.columns[0])
        height = 0.8 / max(1, len(wide.columns))
        for i, evaluator in enumerate(wide.columns):
            positions = np.arange(len(wide)) + i * height
            axes.barh(positions, wide[evaluator].to_numpy(), height=height, label=evaluator)
        axes.set_yticks(np.arange(len(wide)) + height * (len(wide.columns) - 1) / 2)
        axes.set_yticklabels(list(wide.index), fontsize=8)
        axes.set_xlabel(f"importance for {objective}")
        axes.legend(fontsize="small")
    figure.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return path
