"""CPU training speed (samples/s) of one MicroCrackAttentionNeXt training step, eager against compiled.

    .venv/bin/python benchmarks/wavefield_train_speed.py [--n-time 250 500 2000] [--variants eager compile ...]
        [--batch 16] [--steps 5] [--repeats 1] [--warmup 2] [--threads N]
        [--out benchmarks/results/wavefield_train_speed]

One step = forward + combined weighted Dice loss + backward + Adam step of
``models.create("micro_crack_attention_next", n_time=T, activation="gelu", sensor_position=True)`` on
random inputs of the store layout (B, 2, T, 81) and random 36x36 masks with about 2 % ones. Variants:

* ``eager``: plain fp32;
* ``compile``: ``model.compile()`` in place, as the engine does for ``trainer.compile=true``, fp32;
* ``compile_channels_last``: compiled, model and input in ``torch.channels_last``;
* ``bf16_autocast``: eager, forward and loss under ``torch.autocast("cpu", dtype=torch.bfloat16)``
  (what Lightning's ``trainer.precision=bf16-mixed`` autocasts); parameters, gradients and Adam stay fp32;
* ``compile_bf16``: compiled and under the same autocast.

Every variant of one T starts from the same initial weights and trains on the same batch. Per
variant: ``--warmup`` steps first (the first compiles; ``compile_seconds`` = warm-up time minus
``--warmup`` steady steps), then ``--repeats`` rounds of ``--steps`` timed steps, the variants
interleaved round by round; the median round gives samples/s. "Exact enough": on the first step
(before any Adam update) the loss and the gradients of every variant are compared with eager fp32
from the same weights and batch: relative difference of the loss, of the gradient norm, and
||g - g_fp32|| / ||g_fp32||. These are numbers, not a verdict.

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/wavefield_train_speed``). The
JSON records the CPU, threads, torch version, git commit, the load average before and after and
the CPU time other processes used while each variant was timed: on a shared machine the numbers
mean little, so run it on an idle one.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch._dynamo

from crackscope import losses, models
from crackscope.provenance import CpuLoad, available_cpus, cpu_name, git_commit, write_results

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "wavefield_train_speed"
MODEL = "micro_crack_attention_next"
MODEL_KW = {"activation": "gelu", "sensor_position": True}
LOSS = "combined_weighted_dice"
MASK_FRACTION = 0.02
N_SENSORS = 81
MASK_SIZE = 36


@dataclass(frozen=True)
class Variant:
    compile: bool = False
    channels_last: bool = False
    bf16: bool = False


VARIANTS = {
    "eager": Variant(),
    "compile": Variant(compile=True),
    "compile_channels_last": Variant(compile=True, channels_last=True),
    "bf16_autocast": Variant(bf16=True),
    "compile_bf16": Variant(compile=True, bf16=True),
}


# ---- environment ---------------------------------------------------------------------------------


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def attention_uses_sdpa() -> bool:
    """Whether crackscope.nn.layers._AxisSelfAttention calls F.scaled_dot_product_attention."""
    from crackscope.nn import layers

    return "scaled_dot_product_attention" in inspect.getsource(layers._AxisSelfAttention)


# ---- one variant ---------------------------------------------------------------------------------


def make_model(n_time: int) -> torch.nn.Module:
    return models.create(MODEL, n_time=n_time, **MODEL_KW)


def make_batch(n_time: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, n_time, N_SENSORS, generator=g)
    y = (torch.rand(batch, 1, MASK_SIZE, MASK_SIZE, generator=g) < MASK_FRACTION).float()
    return x, y


def _dynamo_graphs() -> int:
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - torch without dynamo
        return 0
    return int(counters["stats"]["unique_graphs"])


class Runner:
    """A model, its Adam optimiser and one batch, set up for one variant from the given initial weights."""

    def __init__(
        self, variant: Variant, init_state: dict, n_time: int, x: torch.Tensor, y: torch.Tensor, lr: float = 1e-3
    ):
        self.variant = variant
        model = make_model(n_time)
        model.load_state_dict(init_state)
        model.train()
        if variant.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if variant.compile:  # in place, as crackscope.engine.train does for trainer.compile=true
            model.compile()
        self.model, self.x, self.y = model, x, y
        self.loss_fn = losses.create(LOSS)
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)

    def _autocast(self):
        if self.variant.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward_backward(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        return loss

    def step(self) -> torch.Tensor:
        loss = self.forward_backward()
        self.opt.step()
        return loss

    def gradients(self) -> torch.Tensor:
        return torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().reshape(-1)
                for p in self.model.parameters()
            ]
        )


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def exactness(loss: float, grads: torch.Tensor, ref_loss: float, ref_grads: torch.Tensor) -> dict:
    """Relative difference of the loss, of the gradient norm and of the gradient vector against a reference."""
    ref_norm = float(ref_grads.norm())
    return {
        "loss": loss,
        "grad_norm": float(grads.norm()),
        "loss_rel_diff": _rel(loss, ref_loss),
        "grad_norm_rel_diff": _rel(float(grads.norm()), ref_norm),
        "grad_rel_err": float((grads - ref_grads).norm()) / max(ref_norm, 1e-30),
    }


def measure(
    n_time: int,
    variants: list[str],
    batch: int = 16,
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 1,
    seed: int = 0,
    log=print,
) -> list[dict]:
    """One result row per variant at this n_time (see the module docstring)."""
    if steps < 1 or warmup < 1 or repeats < 1:
        raise ValueError("steps, warmup and repeats must be >= 1")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    if any(VARIANTS[v].compile for v in variants):
        torch._dynamo.reset()  # every T compiles with static shapes, as a run of one T would
    torch.manual_seed(seed)
    init_state = {k: v.clone() for k, v in make_model(n_time).state_dict().items()}
    x, y = make_batch(n_time, batch, seed)

    ref = Runner(VARIANTS["eager"], init_state, n_time, x, y)  # fp32 eager, first step's loss and gradients
    ref_loss = float(ref.forward_backward().detach())
    ref_grads = ref.gradients()
    del ref

    runners, rows = {}, {}
    for name in variants:
        runner = Runner(VARIANTS[name], init_state, n_time, x, y)
        graphs0 = _dynamo_graphs()
        warm = []
        for i in range(warmup):
            t0 = time.perf_counter()
            loss = runner.forward_backward()
            if i == 0:  # compare before the first Adam update, from the shared initial weights
                t_pause = time.perf_counter()
                first = exactness(float(loss.detach()), runner.gradients(), ref_loss, ref_grads)
                t0 += time.perf_counter() - t_pause
            runner.opt.step()
            warm.append(time.perf_counter() - t0)
        log(f"T={n_time} {name}: warm-up {', '.join(f'{w:.2f}' for w in warm)} s")
        runners[name] = runner
        rows[name] = {
            "n_time": n_time,
            "variant": name,
            **asdict(VARIANTS[name]),
            "batch": batch,
            "steps": steps,
            "repeats": repeats,
            "warmup": warmup,
            "warmup_seconds": warm,
            "dynamo_graphs_at_warmup": _dynamo_graphs() - graphs0,
            "first_step": first,
        }

    rounds = {name: [] for name in variants}
    loads = {name: CpuLoad() for name in variants}
    graphs0 = _dynamo_graphs()
    for _ in range(repeats):
        for name in variants:  # interleaved, so that a change of machine load hits every variant alike
            runner = runners[name]
            with loads[name]:
                t0 = time.perf_counter()
                for _ in range(steps):
                    runner.step()
                rounds[name].append(time.perf_counter() - t0)
    recompiled = _dynamo_graphs() - graphs0

    for name in variants:
        row = rows[name]
        seconds = statistics.median(rounds[name])
        step_s = seconds / steps
        overhead = sum(row["warmup_seconds"]) - warmup * step_s
        row.update(
            {
                "round_seconds": rounds[name],
                "seconds": seconds,
                "step_seconds": step_s,
                "samples_per_s": batch * steps / seconds,
                "compile_seconds": overhead if VARIANTS[name].compile else None,
                "warmup_overhead_seconds": overhead,
                "other_processes_cpu_fraction": loads[name].fraction(),
                "dynamo_graphs_while_timed_all_variants": recompiled,
            }
        )
        log(f"T={n_time} {name}: {row['samples_per_s']:.2f} samples/s ({step_s:.3f} s/step)")
    eager = rows.get("eager")
    for row in rows.values():
        row["speedup_vs_eager"] = row["samples_per_s"] / eager["samples_per_s"] if eager else None
    return list(rows.values())


# ---- report --------------------------------------------------------------------------------------


def _num(v, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(report: dict) -> str:
    """The results table: one row per (T, variant)."""
    hw, sw, st = report["hardware"], report["software"], report["settings"]
    lines = [
        f"# MicroCrackAttentionNeXt training step on the CPU ({report['date']})",
        "",
        f"{hw['cpu_model']}, {hw['available_cpus']} CPUs available, torch {sw['torch']} on "
        f"{sw['torch_threads']} threads; commit {report['git_commit']}. Batch {st['batch']}, "
        f"{st['steps']} timed steps x {st['repeats']} round(s) (median), {st['warmup']} warm-up steps; "
        f"load average before {report['load_average_before']}, after {report['load_average_after']}.",
        "",
        "Loss / gradient differences: first step (before any Adam update), against eager fp32 from the "
        "same weights and batch; `grad rel. err` is ||g - g_fp32|| / ||g_fp32||. `compile s` is the "
        "warm-up time minus as many steady steps.",
        "",
        "| T | variant | samples/s | speed-up vs eager | compile s | loss rel. diff | grad-norm rel. diff "
        "| grad rel. err | other processes' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        f = r["first_step"]
        diffs = (
            ["ref"] * 3
            if r["variant"] == "eager"
            else [_num(f["loss_rel_diff"], ".1e"), _num(f["grad_norm_rel_diff"], ".1e"), _num(f["grad_rel_err"], ".1e")]
        )
        speed = _num(r["speedup_vs_eager"], ".2f")
        lines.append(
            f"| {r['n_time']} | {r['variant']} | {r['samples_per_s']:.2f} | "
            f"{speed + 'x' if speed != '-' else speed} | {_num(r['compile_seconds'], '.1f')} | "
            + " | ".join(diffs)
            + f" | {_num(r['other_processes_cpu_fraction'], '.0%')} |"
        )
    lines += ["", f"`_AxisSelfAttention` uses `F.scaled_dot_product_attention`: {report['attention_uses_sdpa']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-time", type=int, nargs="+", default=[250, 500, 2000])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--repeats", type=int, default=1, help="rounds, variants interleaved; the median is kept")
    p.add_argument("--warmup", type=int, default=2, help="steps before timing (the first compiles)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"writes OUT.json and OUT.md (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if min(args.steps, args.repeats, args.warmup, args.batch) < 1:
        p.error("--steps, --repeats, --warmup and --batch must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = load_average()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for n_time in args.n_time:
        rows += measure(n_time, args.variants, args.batch, args.steps, args.warmup, args.repeats, args.seed)
    report = {
        "benchmark": "wavefield_train_speed",
        "date": started,
        "git_commit": git_commit(),
        "model": MODEL,
        "model_kwargs": MODEL_KW,
        "loss": LOSS,
        "optimizer": "Adam(lr=1e-3)",
        "hardware": {
            "cpu_model": cpu_name(),
            "machine": platform.machine(),
            "available_cpus": available_cpus(),
            "cpu_count": os.cpu_count(),
        },
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "settings": {
            "n_time": args.n_time,
            "variants": args.variants,
            "batch": args.batch,
            "steps": args.steps,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "seed": args.seed,
            "mask_fraction": MASK_FRACTION,
        },
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "attention_uses_sdpa": attention_uses_sdpa(),
        "rows": rows,
    }
    out = Path(args.out)
    if out.suffix in (".json", ".md"):
        out = out.with_suffix("")
    json_path, md_path = write_results(out, report, markdown(report))
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
