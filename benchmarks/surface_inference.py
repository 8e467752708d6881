"""Inference speed of the five surface models on this CPU: PyTorch (eager, no_grad) against ONNX
Runtime (CPUExecutionProvider) on the same exported graph, in images per second.

    .venv/bin/python benchmarks/surface_inference.py [--base-channels 16] [--sizes 128 224] [--batch 1 8]

Weights do not change the speed, so fresh models of the study's width are timed (use --runs to time
trained run directories instead). Each setting is warmed up, then timed over --repeats calls; the
median call time gives images/s. Writes benchmarks/results/surface_inference.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from crackscope.provenance import cpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("unet_cbam", "unet", "deeplabv3plus", "fcn8s", "segnet")


def _median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _export(model, path: Path, size: int) -> None:
    x = torch.rand(1, model.in_channels, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            opset_version=17,
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
            dynamo=False,
        )


def main(argv=None) -> int:
    import onnxruntime as ort

    from crackscope import models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            torch.manual_seed(0)
            model = models.create(name, in_channels=1, classes=1, base_channels=args.base_channels)
            with torch.no_grad():  # batch-norm statistics from real activations: eval outputs are not constant
                for _ in range(3):
                    model(torch.rand(4, 1, 64, 64))
            model.eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            _export(model, onnx_path, max(args.sizes))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
            session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            for size in args.sizes:
                for batch in args.batch:
                    x = torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(1))
                    xn = x.numpy()
                    with torch.no_grad():
                        ref = model(x).numpy()
                        t_torch = _median_seconds(lambda: model(x), args.repeats)
                    got = session.run(["logits"], {"image": xn})[0]
                    t_ort = _median_seconds(lambda: session.run(["logits"], {"image": xn}), args.repeats)
                    rows.append(
                        {
                            "model": name,
                            "size": size,
                            "batch": batch,
                            "parameters": sum(p.numel() for p in model.parameters()),
                            "torch_images_per_s": batch / t_torch,
                            "onnxruntime_images_per_s": batch / t_ort,
                            "max_abs_diff": float(np.abs(got - ref).max()),
                        }
                    )
                    print(
                        f"{name:14s} {size}px b{batch}: torch {batch / t_torch:7.1f} img/s  "
                        f"onnxruntime {batch / t_ort:7.1f} img/s  |diff| {rows[-1]['max_abs_diff']:.1e}",
                        flush=True,
                    )
    info = {
        "cpu": cpu_name(),
        "threads": args.threads,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "base_channels": args.base_channels,
        "rows": rows,
    }
    lines = [
        f"Surface models, inference on {info['cpu']} ({args.threads} threads), base_channels "
        f"{args.base_channels}, 1-channel input; images/s (median of {args.repeats} calls).",
        "",
        "| model | input | batch | parameters | PyTorch img/s | ONNX Runtime img/s | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['size']}x{r['size']} | {r['batch']} | {r['parameters']:,} | "
            f"{r['torch_images_per_s']:.1f} | {r['onnxruntime_images_per_s']:.1f} | {r['max_abs_diff']:.1e} |"
        )
    write_results(ROOT / "benchmarks" / "results" / "surface_inference", info, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
