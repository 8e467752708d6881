"""MDA of trained runs: feature manifolds of chosen layers, untrained vs trained (the paper's Figs. 3-5).

For each run, the model is rebuilt twice — with the run's initial weights (same seed) and with its
trained weights — and both see the same samples (the run's test split, or ``data``). The MDA
distances are measured on the ground-truth masks by default (``reference="targets"``), so every
panel of a figure is coloured by the same quantity and panels are comparable; ``"outputs"`` uses
each model's own predictions as in the original MDA.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader, Subset

from crackscope.analysis.mda import extract_features, mda_embedding, plot_mda
from crackscope.errors import InputError


def mda_for_run(
    run_dir,
    layers: list[str],
    out: str | Path,
    *,
    data=None,
    max_samples: int = 300,
    reference: str = "targets",
    seed: int = 0,
) -> Path:
    """Write a figure with one panel per (untrained|trained, layer) of one run; returns its path."""
    from crackscope.data import WavefieldDataset
    from crackscope.engine.runs import build_model, load_run

    if reference not in ("targets", "outputs"):
        raise InputError(f"--reference must be targets or outputs, got {reference!r}")
    run_dir = Path(run_dir)
    cfg, trained, geometry = load_run(run_dir)
    L.seed_everything(cfg.seed, verbose=False)
    untrained = build_model(cfg, geometry).eval()  # the same initial weights as the run had
    store = Path(data) if data else cfg.data.store
    indices = None
    split = run_dir / "split.json"
    if data is None and split.exists():
        indices = json.loads(split.read_text())["test"] + json.loads(split.read_text())["val"]
    dataset = WavefieldDataset(
        store, indices=indices, subtract_reference=cfg.data.subtract_reference, normalize=cfg.data.normalize
    )
    if len(dataset) > max_samples:
        dataset = Subset(dataset, range(max_samples))
    loader = DataLoader(dataset, batch_size=16)
    results = {}
    for state, model in (("untrained", untrained), ("trained", trained)):
        feats = extract_features(model, loader, layers)
        ref = feats["targets"] if reference == "targets" else feats["outputs"]
        for layer in layers:
            results[f"{state}: {layer}"] = mda_embedding(feats[layer], ref, seed=seed)
    out = Path(out)
    plot_mda(
        results,
        out,
        title=f"MDA of {cfg.name} ({cfg.model.name}, activation "
        f"{cfg.model.kwargs.get('activation', 'default')}, {len(dataset)} samples)",
    )
    return out


def default_layers(run_dir) -> list[str]:
    """The bottleneck and the last decoder stage when the model has them, else its last two children."""
    from crackscope.engine.runs import load_run

    _, model, _ = load_run(run_dir)
    names = [n for n, _ in model.named_children()]
    preferred = [n for n in ("bottleneck", "up2") if n in names]
    return preferred or names[-2:]
