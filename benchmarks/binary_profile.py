"""Where the time of the bit-packed AOIE-Net goes, beside ONNX Runtime's float ResNet-20, and how
close each binary layer comes to what this CPU can do.

    .venv/bin/python benchmarks/binary_profile.py [--aoie neu-cls/aoie_net] [--float neu-cls/resnet20]
        [--sides 64 200] [--batches 1 32] [--threads 1 2] [--repeats 20]

1. **Packed AOIE-Net, per layer**: every call of one forward pass is timed (median over --repeats
   passes after warm-up): the per-image standardisation, the float stem, for each binary unit the
   packing of its input into bits (``bitconv.pack_row_triples``, binarisation included), the
   XNOR/popcount convolution with its fused BatchNorm, residual and activation
   (``bitconv.ConvOperands.run``) and the float shortcut, then pooling and the classifier; what the
   pass takes beyond the sum of its parts is Python and dispatch overhead.
2. **ONNX Runtime, per node**: the same shapes through the float ResNet-20 with ORT's own profiler,
   summed by operator type.
3. **Roofline of the binary kernel**: the XOR + popcount rate of this CPU (a numba loop over
   L1-resident uint64 words, vectorised to VPOPCNTQ where the CPU has it: bit-operations/s, one
   XOR and one count per bit) and its memory bandwidth (a large array copy, bytes/s). For every
   binary convolution: its bit-operations (2 x C_in x 9 x C_out x H_out x W_out x planes), the bytes
   it must move at least (packed input, weights, float32 output), its arithmetic intensity, the
   bound min(peak, intensity x bandwidth), and the fraction of it reached.

Writes benchmarks/results/binary_profile.{json,md}. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from crackscope.errors import exit_code_of
from crackscope.provenance import hardware, write_results

ROOT = Path(__file__).resolve().parents[1]


# ---- 3. the machine ---------------------------------------------------------------------------------
def _popcount_rate(words: int = 4096, repeats: int = 2000) -> float:
    """XOR + popcount bit-operations per second of one thread on L1-resident words."""
    from numba import njit

    from crackscope.deploy.bitconv import _popcount64

    @njit(cache=False)
    def kernel(a, w, repeats):
        total = 0
        for _ in range(repeats):
            for i in range(a.shape[0]):
                total += _popcount64(a[i] ^ w)
            w += np.uint64(1)
        return total

    a = np.random.default_rng(0).integers(0, 2**63, words, dtype=np.int64).view(np.uint64)
    kernel(a, np.uint64(3), 1)
    t0 = time.perf_counter()
    kernel(a, np.uint64(3), repeats)
    seconds = time.perf_counter() - t0
    return 2 * 64 * words * repeats / seconds


def _bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large array copy (read + write counted)."""
    a = np.ones(megabytes << 17, dtype=np.float64)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


# ---- 1. the packed network, call by call ----------------------------------------------------------------
class _Clock:
    """Wraps functions to record their wall time per call, in order, for one pass."""

    def __init__(self):
        self.events: list[tuple[str, float]] = []

    def wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.events.append((label, time.perf_counter() - t0))
            return out

        return timed


def _layer_shapes(packed, x: torch.Tensor) -> list[dict]:
    """Per binary convolution, in order: its input and output shapes, planes and stride (the units
    run one by one, each through :meth:`PackedBinaryConv.run`)."""
    from crackscope.deploy.packed import PackedBinaryConv

    shapes = []
    original = PackedBinaryConv.run

    def run(mod, xa, residual=None, post=None):
        out = original(mod, xa, residual, post)
        shapes.append(
            {
                "input": list(xa.shape),
                "output": list(out.shape),
                "planes": int(mod.thresholds.shape[0]),
                "stride": mod.stride,
            }
        )
        return out

    packed.__dict__["_step_cache"] = list(packed.units)
    PackedBinaryConv.run = run
    try:
        with torch.no_grad():
            packed(x)
    finally:
        PackedBinaryConv.run = original
        packed.__dict__["_step_cache"] = None
    return shapes


def profile_packed(packed, x: torch.Tensor, repeats: int) -> dict:
    """Median seconds per pass of each part of the packed network's forward pass, its units run one
    by one (a stage's chain of units, :class:`~crackscope.deploy.bitconv.ResidualChain`, is one
    compiled call that the clock cannot look into), and of the pass as it runs (``chained_s``)."""
    from crackscope.deploy import bitconv

    with torch.no_grad():
        for _ in range(3):
            packed(x)
        chained = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            packed(x)
            chained.append(time.perf_counter() - t0)
    packed.__dict__["_step_cache"] = list(packed.units)  # one unit per call while the clock runs
    clock = _Clock()
    originals = {"pack_row_triples": bitconv.pack_row_triples}
    original_run = bitconv.ConvOperands.run
    parts = {"stem": packed.stem, "fc": packed.fc}
    if packed.standardize is not None:
        parts["standardize"] = packed.standardize
    saved = {k: m.forward for k, m in parts.items()}
    shortcuts = [(u, u.shortcut.forward) for u in packed.units]
    try:
        bitconv.pack_row_triples = clock.wrap("pack bits", originals["pack_row_triples"])
        bitconv.ConvOperands.run = clock.wrap("binary conv + BN + residual + activation", original_run)
        for k, m in parts.items():
            m.forward = clock.wrap(
                {"stem": "float stem", "fc": "classifier", "standardize": "standardise"}[k], saved[k]
            )
        for u, fwd in shortcuts:
            u.shortcut.forward = clock.wrap("float shortcut", fwd)
        totals: dict[str, list[float]] = {}
        for r in range(repeats + 3):
            clock.events.clear()
            t0 = time.perf_counter()
            with torch.no_grad():
                packed(x)
            total = time.perf_counter() - t0
            if r < 3:  # warm-up
                continue
            by_part: dict[str, float] = {}
            for label, s in clock.events:
                by_part[label] = by_part.get(label, 0.0) + s
            by_part["overhead (Python, pooling, dispatch)"] = total - sum(by_part.values())
            by_part["total"] = total
            for k, v in by_part.items():
                totals.setdefault(k, []).append(v)
        per_conv = [s for label, s in clock.events if label.startswith("binary conv")]
        per_pack = [s for label, s in clock.events if label == "pack bits"]
    finally:
        for name, fn in originals.items():
            setattr(bitconv, name, fn)
        bitconv.ConvOperands.run = original_run
        for k, m in parts.items():
            m.forward = saved[k]
        for u, fwd in shortcuts:
            u.shortcut.forward = fwd
        packed.__dict__["_step_cache"] = None  # the chains again
    return {
        "chained_s": statistics.median(chained),
        "parts_s": {k: statistics.median(v) for k, v in totals.items()},
        "last_pass_conv_s": per_conv,
        "last_pass_pack_s": per_pack,
    }


# ---- 2. ONNX Runtime's own profile ---------------------------------------------------------------------------
def profile_onnx(model, x: torch.Tensor, threads: int, repeats: int) -> dict:
    """Median seconds per run of each operator type of ``model`` in ONNX Runtime (its profiler)."""
    from crackscope.deploy.export import image_model_session

    with tempfile.TemporaryDirectory() as tmp:
        session = image_model_session(model, Path(tmp) / "model.onnx", x, threads, profile_prefix=Path(tmp) / "ort")
        feed = {"image": x.numpy()}
        for _ in range(3):
            session.run(None, feed)
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            session.run(None, feed)
            walls.append(time.perf_counter() - t0)
        trace = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    by_op: dict[str, float] = {}
    for e in trace:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + e["dur"] * 1e-6
    n_runs = max(len(runs), 1)
    return {
        "wall_s": statistics.median(walls[-repeats:]),
        "by_op_s": {k: v / n_runs for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "runs_profiled": len(runs),
    }


def _roofline(shapes: list[dict], conv_s: list[float], peak: float, bandwidth: float) -> list[dict]:
    from crackscope.deploy.bitconv import field_layout

    rows = []
    for shape, seconds in zip(shapes, conv_s):
        n, c_in, h, w = shape["input"]
        _, c_out, h_out, w_out = shape["output"]
        bitops = 2 * c_in * 9 * c_out * h_out * w_out * n * shape["planes"]
        row_words = field_layout(c_in)[1]
        moved = (
            (shape["planes"] * n * row_words * (h + 2) * w_out * 8)
            + 9 * c_in * c_out / 8
            + 4 * n * c_out * h_out * w_out
        )
        intensity = bitops / moved
        bound = min(peak, intensity * bandwidth)
        rows.append(
            {
                **shape,
                "seconds": seconds,
                "bitops": bitops,
                "bytes": moved,
                "intensity_bitops_per_byte": intensity,
                "bound_bitops_per_s": bound,
                "reached_bitops_per_s": bitops / seconds,
                "fraction_of_bound": bitops / seconds / bound,
            }
        )
    return rows


def _markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Where the bit-packed AOIE-Net's time goes",
        "",
        f"Measured {env['date']} on {env['cpu']} ({env['cpus']} CPUs), torch {env['torch']}; median of "
        f"{result['repeats']} passes. Peak XOR + popcount rate of one thread {result['peak_bitops_per_s'] / 1e9:.0f} "
        f"Gbit-op/s; copy bandwidth {result['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s.",
        "",
    ]
    for case in result["cases"]:
        lines += [
            f"## {case['side']} px, batch {case['batch']}, {case['threads']} thread(s)",
            "",
            f"Packed AOIE-Net {1e3 * case['packed']['chained_s']:.2f} ms as it runs, "
            f"{1e3 * case['packed']['parts_s']['total']:.2f} ms with every unit a call of its own (the parts "
            f"below); ResNet-20 in ONNX Runtime {1e3 * case['onnx']['wall_s']:.2f} ms.",
            "",
            "| packed AOIE-Net part | ms | share |",
            "|---|---:|---:|",
        ]
        total = case["packed"]["parts_s"]["total"]
        for k, v in sorted(case["packed"]["parts_s"].items(), key=lambda kv: -kv[1]):
            if k != "total":
                lines.append(f"| {k} | {1e3 * v:.3f} | {v / total:.0%} |")
        lines += ["", "| ONNX Runtime operator (ResNet-20) | ms |", "|---|---:|"]
        for k, v in case["onnx"]["by_op_s"].items():
            lines.append(f"| {k} | {1e3 * v:.3f} |")
        lines += [
            "",
            "| binary conv | input | planes | ms | Gbit-op | bit-op / byte | bound Gbit-op/s | reached | of bound |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i, r in enumerate(case["roofline"], 1):
            lines.append(
                f"| {i} | {'x'.join(map(str, r['input']))} | {r['planes']} | {1e3 * r['seconds']:.3f} | "
                f"{r['bitops'] / 1e9:.3f} | {r['intensity_bitops_per_byte']:.0f} | "
                f"{r['bound_bitops_per_s'] / 1e9:.0f} | "
                f"{r['reached_bitops_per_s'] / 1e9:.1f} | {r['fraction_of_bound']:.1%} |"
            )
        lines.append("")
    return "\n".join(lines)


def _main(argv=None) -> int:
    from crackscope.deploy.packed import pack_model
    from crackscope.engine.runs import load_run
    from crackscope.shipped import resolve

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--aoie", default="neu-cls/aoie_net", help="AOIE-Net run, model folder or shipped name")
    p.add_argument("--float", dest="float_model", default="neu-cls/resnet20", help="the float ResNet-20")
    p.add_argument("--sides", type=int, nargs="+", default=[64, 200])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--name", default="binary_profile")
    args = p.parse_args(argv)

    aoie = load_run(resolve(args.aoie, "classifier")[0])[1].eval()
    resnet = load_run(resolve(args.float_model, "classifier")[0])[1].eval()
    packed = pack_model(aoie).prepare()
    torch.set_num_threads(1)
    peak, bandwidth = _popcount_rate(), _bandwidth()
    cases = []
    for threads in args.threads:
        torch.set_num_threads(threads)  # the packed runtime follows torch's count (bitconv._kernels)
        for side in args.sides:
            for batch in args.batches:
                x = torch.rand(batch, 1, side, side)
                prof = profile_packed(packed, x, args.repeats)
                shapes = _layer_shapes(packed, x)
                cases.append(
                    {
                        "side": side,
                        "batch": batch,
                        "threads": threads,
                        "packed": prof,
                        "onnx": profile_onnx(resnet, x, threads, args.repeats),
                        "roofline": _roofline(shapes, prof["last_pass_conv_s"], peak * threads, bandwidth),
                    }
                )
                print(
                    f"{side} px, batch {batch}, {threads} thread(s): packed {1e3 * prof['chained_s']:.2f} ms "
                    f"({1e3 * prof['parts_s']['total']:.2f} unit by unit), "
                    f"ORT {1e3 * cases[-1]['onnx']['wall_s']:.2f} ms",
                    flush=True,
                )
    result = {
        "aoie": args.aoie,
        "float": args.float_model,
        "repeats": args.repeats,
        "peak_bitops_per_s": peak,
        "bandwidth_bytes_per_s": bandwidth,
        "cases": cases,
        "environment": {"date": datetime.date.today().isoformat(), **hardware()},
    }
    write_results(args.out / args.name, result, _markdown(result))
    print(_markdown(result))
    return 0


def main(argv=None) -> int:
    return exit_code_of(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
