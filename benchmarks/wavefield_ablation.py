"""Fast screening of wave-field training options: the library's model and loss in a plain loop over
a store held in memory (no checkpoints, no resume), so one option can be compared with another in
minutes on a CPU. Headline numbers come from ``crackscope train``; this script only ranks options.

Per epoch it prints the training loss, samples/s and the validation DSC at 0.5 and at the best
threshold of 0.1 ... 0.7; at the end the test DSC per crack-size class at the validation-chosen
threshold, the cell-level F1 (a 4 x 4 cell counts as predicted when any of its pixels is) and the
cell-oracle DSC of the test plates (``benchmarks/wavefield_cell_oracle.py``). The split is a
seeded 80 / 10 / 10 permutation of the first ``--n`` plates.

    python benchmarks/wavefield_ablation.py --store STORE [--n 4000] [--epochs 3] [--loss cwdl]
        [--ref 1] [--norm global|slog|sensor|none] [--tmax T] [--mirror 1]
        [--kw '{"sensor_position": true, "stem": "conv", "upsample": "bilinear"}']
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from crackscope import losses
from crackscope.data.wavefield_store import open_store
from crackscope.models import create

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def load(store: str, n: int, ref: bool, norm: str, tmax: int):
    """(X (N, 2, T, S) float32, M (N, 1, H, W) float32, longest crack [µm] (N,)) of the first n plates."""
    g = open_store(store)
    n = n or int(g["done"].shape[0])
    x = np.asarray(g["signals"][:n], dtype=np.float32)
    if ref:
        x = x - np.asarray(g["reference"][...], dtype=np.float32)[None]
    if tmax:
        x = x[..., :tmax]
    scale = x[: min(n, 512)].std()
    if norm == "global":
        x = x / scale
    elif norm == "slog":  # signed log: compresses the orders of magnitude between small and large cracks
        x = np.sign(x) * np.log1p(np.abs(x) / (0.01 * scale))
    elif norm == "sensor":
        x = x / x[: min(n, 512)].std(axis=(0, 3), keepdims=True)
    m = (np.asarray(g["masks"][:n]) > 0).astype(np.float32)
    longest = np.asarray(g["max_crack_length_um"][:n])
    return (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 3, 2))), torch.from_numpy(m)[:, None], longest)


def reflect(x: torch.Tensor, m: torch.Tensor, grid: int = 9):
    """Reflect a random half of a batch about the plate's mid-line (see WavefieldDataset ``mirror``)."""
    f = torch.rand(x.shape[0]) < 0.5
    if not f.any():
        return x, m
    x, m = x.clone(), m.clone()
    xf = x[f].reshape(-1, 2, x.shape[2], grid, grid).flip(3).reshape(-1, 2, x.shape[2], grid * grid)
    xf[:, 1] *= -1
    x[f], m[f] = xf, m[f].flip(2)
    return x, m


def dsc_at(p: torch.Tensor, y: torch.Tensor, t: float) -> float:
    pred, true = p > t, y > 0
    tp, fp, fn = (pred & true).sum().item(), (pred & ~true).sum().item(), (~pred & true).sum().item()
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--loss", default="cwdl")
    p.add_argument("--losskw", default="{}")
    p.add_argument("--model", default="micro_crack_attention_next")
    p.add_argument("--kw", default="{}", help="model options as JSON")
    p.add_argument("--ref", type=int, default=1, help="subtract the intact reference")
    p.add_argument("--norm", default="global", choices=("global", "slog", "sensor", "none"))
    p.add_argument("--tmax", type=int, default=0, help="keep only the first tmax time samples")
    p.add_argument("--mirror", type=int, default=0)
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=0.0)
    p.add_argument("--compile", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, m, longest = load(a.store, a.n, bool(a.ref), a.norm, a.tmax)
    n = x.shape[0]
    perm = np.random.default_rng(0).permutation(n)
    tr, va, te = perm[: int(0.8 * n)], perm[int(0.8 * n) : int(0.9 * n)], perm[int(0.9 * n) :]
    model = create(a.model, n_time=x.shape[2], activation="gelu", **json.loads(a.kw))
    loss_fn = losses.create(a.loss, **json.loads(a.losskw))
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.wd)
    step = torch.compile(model) if a.compile else model

    def probabilities(idx):
        model.eval()
        with torch.no_grad():
            out = torch.cat([torch.sigmoid(model(x[idx[i : i + 64]])) for i in range(0, len(idx), 64)])
        model.train()
        return out

    print(
        f"plates={n} T={x.shape[2]} train={len(tr)} parameters={sum(q.numel() for q in model.parameters())}", flush=True
    )
    best_t = 0.5
    for epoch in range(a.epochs):
        t0, total, steps = time.time(), 0.0, 0
        order = tr[torch.randperm(len(tr), generator=torch.Generator().manual_seed(epoch)).numpy()]
        for i in range(0, len(order) - a.bs + 1, a.bs):
            xb, mb = x[order[i : i + a.bs]], m[order[i : i + a.bs]]
            if a.mirror:
                xb, mb = reflect(xb, mb)
            opt.zero_grad()
            loss = loss_fn(step(xb), mb)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        pv = probabilities(va)
        scores = {t: dsc_at(pv, m[va], t) for t in THRESHOLDS}
        best_t = max(scores, key=scores.get)
        print(
            f"epoch {epoch} loss {total / steps:.4f} {len(order) / (time.time() - t0):.1f} samples/s "
            f"val DSC@0.5 {scores[0.5]:.3f} best {scores[best_t]:.3f}@{best_t}",
            flush=True,
        )
    pt, yt, lt = probabilities(te), m[te], torch.from_numpy(longest[te])
    sizes = {f">{b}": round(dsc_at(pt[lt > b], yt[lt > b], best_t), 3) for b in (0, 1, 2, 3, 4)}
    grid = 9
    cell = pt.shape[-1] // grid
    pc = (pt > best_t).reshape(-1, grid, cell, grid, cell).any(4).any(2)
    yc = (yt > 0).reshape(-1, grid, cell, grid, cell).any(4).any(2)
    tp, fp, fn = (pc & yc).sum().item(), (pc & ~yc).sum().item(), (~pc & yc).sum().item()
    oracle = yc[:, :, None, :, None].expand(-1, grid, cell, grid, cell).reshape(yt.shape).float()
    print(
        f"test DSC at the validation threshold {best_t}: {sizes}; at 0.5: {dsc_at(pt, yt, 0.5):.3f}; "
        f"cell-level F1 {2 * tp / max(2 * tp + fp + fn, 1):.3f}; cell-oracle DSC {dsc_at(oracle, yt, 0.5):.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
