"""Bit-packed AOIE-Net against float inference: model size, CPU latency, and agreement with PyTorch.

Compared on one NEU-CLS-shaped input (1 grey channel, 6 classes), batch 1 (one image, latency) and
batch 32 (throughput), at the size the model was trained at and at the native 200 x 200:

* ``packed AOIE-Net``        1-bit weights, XNOR/popcount convolutions (``crackscope.deploy.packed``)
* ``AOIE-Net, PyTorch``      the training-time model (float32 tensors holding binary values)
* ``ResNet-20, PyTorch``     the full-precision baseline
* ``ResNet-20, ONNX Runtime`` the full-precision baseline exported to ONNX (CPUExecutionProvider)
* ``AOIE-Net, ONNX Runtime`` the training-time AOIE-Net exported to ONNX

Latency: median of ``--repeats`` timed calls after 5 warm-up calls, one model at a time (see
``_median_ms`` for why not interleaved), with 1 and 2 threads (torch, numba and onnxruntime set
alike), in ``--rounds`` rounds that each time every model once more; a model's figure is the
median of its round medians, and the speed ratio the median of the rounds' ratios, with their
range. Rounds, because on a shared 2-vCPU virtual machine the speed of two threads moves by up to
a third within seconds and both runtimes move with it (docs/binary.md): a ratio taken within one
round compares the two in the same state of the machine.

Sizes: bytes of each model file. Agreement (when a trained AOIE-Net run or model folder is given
with ``--aoie``): the packed and the PyTorch model on the run's NEU-CLS test split -- identical
predictions, largest logit difference, activation bits that differ. Fresh process: a new
Python process imports crackscope, loads the packed file and classifies one 64 x 64 px image,
with numba's on-disk cache as installed and with an empty one (the first run on a machine, which
compiles the kernels). The markdown also names the instruction-set path numba compiled
(``bitconv.instruction_set``).

    .venv/bin/python benchmarks/binary_packed.py --aoie src/crackscope/weights/neu-cls/aoie_net \
        --float src/crackscope/weights/neu-cls/resnet20
        # -> benchmarks/results/binary_packed.{md,json}

Without trained models it times untrained ones of the same architecture (latency does not depend
on the weights) and skips the agreement check.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from crackscope import models
from crackscope.allocator import allocator_state
from crackscope.deploy import bitconv
from crackscope.deploy.packed import compare_with_model, pack_model, packed_size_bits, save_packed
from crackscope.provenance import cpu_name, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


SETTLE_S = 0.25  # s: the pause before each model is timed, for the last model's threads to go idle


def _median_ms(fns: dict, repeats: int, warmup: int = 5) -> dict:
    """Median wall time (ms) of each callable, timed one model at a time (a pause of
    :data:`SETTLE_S`, warm-up calls, then ``repeats`` timed ones). Not interleaved call by call:
    ONNX Runtime's worker threads spin-wait after each call (its default), and interleaved, that
    spinning most likely took a core from the model timed next -- with two threads the packed and
    the PyTorch AOIE-Net came out slower than with one (64 x 64, batch 1: 14.0 against 5.1 ms
    packed), which they are not when timed alone. The pause: ONNX Runtime's worker still ran 30-50 ms
    of the 0.3 s of packed passes that followed its calls at once, the passes of the packed team
    then had 4-10 ms spikes, and the packed network's chooser ran one thread for the rest of the
    round (64 px, batch 1, two threads: 1.41-1.62 ms against 0.92-0.97 in each run's first round);
    after a pause of 0.2 s, none of it (docs/binary.md)."""
    times = {}
    for name, fn in fns.items():
        time.sleep(SETTLE_S)
        for _ in range(warmup):
            fn()
        times[name] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def _onnx_session(model, path: Path, size: int, threads: int):
    from crackscope.deploy.export import image_model_session

    return image_model_session(model, path, torch.rand(1, 1, size, size), threads)


def _load(run_or_folder: str | None, fallback: str):
    if run_or_folder:
        from crackscope.engine.runs import load_run

        cfg, model, geometry = load_run(run_or_folder)
        return cfg, model
    return None, models.create(fallback, in_channels=1, classes=6).eval()


AGREEMENT_BATCH = 16  # images per comparison: all 288 NEU-CLS test images at once held 13.7 GB of activations


def _agreement(cfg, model, packed, run_dir: str) -> dict:
    """Packed vs PyTorch on the run's test split (NEU-CLS images at the run's size), in batches of
    :data:`AGREEMENT_BATCH` images (``compare_with_model`` keeps every binary layer's input)."""
    from crackscope.data.classification import ImageClassificationDataset

    split = json.loads((Path(run_dir) / "split.json").read_text())
    ds = ImageClassificationDataset(
        cfg.data.root,
        format=split.get("format", cfg.data.format),
        indices=split["test"],
        size=cfg.data.size,
        channels=cfg.data.channels,
        augment=False,
    )
    same = flips = bits = correct_torch = correct_packed = 0
    largest = 0.0
    for start in range(0, len(ds), AGREEMENT_BATCH):
        items = [ds[i] for i in range(start, min(len(ds), start + AGREEMENT_BATCH))]
        x = torch.stack([image for image, _ in items])
        labels = torch.tensor([int(label) for _, label in items])
        report = compare_with_model(model, packed, x)
        same += round(report["same_prediction"] * len(items))
        flips += report["activation_bits_flipped"]
        bits += report["activation_bits"]
        largest = max(largest, report["max_abs_logit_diff"])
        with torch.no_grad():
            correct_torch += int((model(x).argmax(1) == labels).sum())
        correct_packed += int((packed(x).argmax(1) == labels).sum())
    n = len(ds)
    return {
        "max_abs_logit_diff": largest,
        "same_prediction": same / n,
        "activation_bits_flipped": flips,
        "activation_bits": bits,
        "test_images": n,
        "accuracy_pytorch": correct_torch / n,
        "accuracy_packed": correct_packed / n,
    }


_FRESH = """
import sys, time
t0 = time.perf_counter()
import torch
from crackscope.deploy.packed import load_packed
torch.set_num_threads(int(sys.argv[2]))
packed = load_packed(sys.argv[1])
x = torch.rand(1, 1, 64, 64)
t1 = time.perf_counter()
packed(x)
t2 = time.perf_counter()
packed(x)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def _fresh_process(packed_file: Path, threads: int, cold_cache: bool) -> dict:
    """A new Python process: import + load (s), its first 64 x 64 px call (s), its second call (s);
    with numba's on-disk cache as the install left it, or empty (the very first run on a machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as cache:
        if cold_cache:
            env["NUMBA_CACHE_DIR"] = cache
        subprocess.run([sys.executable, "-c", _FRESH, str(packed_file), str(threads)], env=env, check=True)  # warm
        if cold_cache:
            shutil.rmtree(cache, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, "-c", _FRESH, str(packed_file), str(threads)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    load_s, first_s, second_s = (float(v) for v in out.stdout.split())
    return {"import_and_load_s": load_s, "first_call_s": first_s, "second_call_s": second_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aoie", help="trained AOIE-Net run or model folder (default: untrained)")
    parser.add_argument("--float", dest="float_model", help="trained ResNet-20 run or model folder")
    parser.add_argument("--sizes", default="64,200", help="input sides to time")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of timing every model (see the docstring)")
    parser.add_argument("--out", default=str(RESULTS / "binary_packed"))
    parser.add_argument(
        "--no-pytorch", action="store_true", help="time only the packed network and ONNX Runtime (a quicker run)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least one round")
    import numba
    import onnxruntime

    cfg, aoie = _load(args.aoie, "aoie_net_resnet20")
    _, resnet = _load(args.float_model, "resnet20")
    packed = pack_model(aoie, {"kwargs": {"in_channels": 1, "classes": 6}})
    work = Path(tempfile.mkdtemp())
    sizes = {"packed AOIE-Net (bytes)": save_packed(packed, work / "aoie.packed.safetensors").stat().st_size}
    from safetensors.torch import save_file

    for label, model in (
        ("AOIE-Net float32 safetensors (bytes)", aoie),
        ("ResNet-20 float32 safetensors (bytes)", resnet),
    ):
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(work / "m.safetensors"))
        sizes[label] = (work / "m.safetensors").stat().st_size
    size_bits = packed_size_bits(packed)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)  # after numba's: starting its 'omp' layer can change PyTorch's count
        sessions = {
            "ResNet-20, ONNX Runtime": _onnx_session(resnet, work / "resnet.onnx", 64, threads),
            "AOIE-Net, ONNX Runtime": _onnx_session(aoie, work / "aoie.onnx", 64, threads),
        }
        for side in [int(s) for s in args.sizes.split(",")]:
            for batch in [int(b) for b in args.batches.split(",")]:
                x = torch.rand(batch, 1, side, side)
                xn = x.numpy()
                fns = {"packed AOIE-Net": lambda: packed(x)}
                if not args.no_pytorch:
                    fns["AOIE-Net, PyTorch"] = lambda: aoie(x)
                    fns["ResNet-20, PyTorch"] = lambda: resnet(x)
                for label, sess in sessions.items():
                    fns[label] = lambda sess=sess: sess.run(["logits"], {"image": xn})
                with torch.no_grad():
                    rounds = [_median_ms(fns, args.repeats) for _ in range(args.rounds)]
                for label in fns:
                    per_round = [t[label] for t in rounds]
                    ms = statistics.median(per_round)
                    rows.append(
                        {
                            "model": label,
                            "threads": threads,
                            "side": side,
                            "batch": batch,
                            "ms": ms,
                            "ms_per_image": ms / batch,
                            "ms_rounds": per_round,
                        }
                    )
                print(threads, side, batch, {k: [round(t[k], 2) for t in rounds] for k in fns}, flush=True)
    agreement = _agreement(cfg, aoie, packed, args.aoie) if args.aoie else None
    fresh = {
        f"{label}, {threads} thread(s)": _fresh_process(work / "aoie.packed.safetensors", threads, cold)
        for threads in [int(t) for t in args.threads.split(",")]
        for label, cold in (("numba cache warm", False), ("numba cache empty", True))
    }
    result = {
        "hardware": f"{cpu_name()}, {torch.get_num_threads()} threads max",
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numba": numba.__version__,
        "aoie": args.aoie,
        "float": args.float_model,
        "file_bytes": sizes,
        "packed_size_bits": size_bits,
        "latency": rows,
        "agreement": agreement,
        "instruction_set": bitconv.instruction_set(),
        "fresh_process_64px": fresh,
        "allocator": allocator_state(),  # crackscope.allocator: applied by the packed runtime's first call
        "date": datetime.date.today().isoformat(),
    }
    write_results(Path(args.out), result, _markdown(result))
    print(_markdown(result))
    return 0


def _round_ratios(latency: list, key: tuple, slow: str, fast: str) -> list:
    """``slow`` ms / ``fast`` ms of each round at ``key`` (threads, side, batch)."""
    cells = {row["model"]: row["ms_rounds"] for row in latency if (row["threads"], row["side"], row["batch"]) == key}
    return [x / y for x, y in zip(cells[slow], cells[fast], strict=True)]


def _markdown(r: dict) -> str:
    fb = r["file_bytes"]
    packed, float_aoie, float_resnet = (
        fb["packed AOIE-Net (bytes)"],
        fb["AOIE-Net float32 safetensors (bytes)"],
        fb["ResNet-20 float32 safetensors (bytes)"],
    )
    sb = r["packed_size_bits"]
    allocator = r.get("allocator") or {}
    kept = "yes" if allocator.get("applied") else allocator.get("reason", "not recorded")
    lines = [
        "# Bit-packed AOIE-Net (ResNet-20, NEU-CLS input) against float inference",
        "",
        f"Measured {r.get('date', '')} on CPU: {r['cpu']}; torch {r['torch']}, onnxruntime {r['onnxruntime']}, "
        f"numba {r['numba']}. Models: AOIE-Net `{r['aoie'] or 'untrained'}`, ResNet-20 `{r['float'] or 'untrained'}`. "
        f"Large freed blocks kept by the C allocator (crackscope.allocator): "
        f"{kept}.",
        "",
        "## Size",
        "",
        "| file | bytes | vs packed |",
        "|---|---:|---:|",
        f"| packed AOIE-Net (1-bit weights + float32 thresholds, levels, folded BN) | {packed:,} | 1.0x |",
        f"| AOIE-Net, float32 safetensors (training-time model) | {float_aoie:,} | {float_aoie / packed:.1f}x |",
        f"| ResNet-20, float32 safetensors (full precision) | {float_resnet:,} | {float_resnet / packed:.1f}x |",
        "",
        f"Packed content: {sb['weight_sign_bits']:,} weight sign bits + {sb['float32_values']:,} float32 values "
        f"= {sb['total_bits'] / 1e6:.3f} Mbit.",
        "",
        "## Latency (median ms per call)",
        "",
    ]
    models_ = list(dict.fromkeys(row["model"] for row in r["latency"]))
    lines += ["| threads | side | batch | " + " | ".join(models_) + " |", "|---:|---:|---:|" + "---:|" * len(models_)]
    keys = list(dict.fromkeys((row["threads"], row["side"], row["batch"]) for row in r["latency"]))
    for key in keys:
        cells = {row["model"]: row["ms"] for row in r["latency"] if (row["threads"], row["side"], row["batch"]) == key}
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(f"{cells[m]:.2f}" for m in models_) + " |")
    ort, mine = "ResNet-20, ONNX Runtime", "packed AOIE-Net"
    lines += [
        "",
        "Packed AOIE-Net speed / ResNet-20 ONNX Runtime speed (ORT ms / packed ms), "
        f"{r.get('instruction_set', '?')} path:",
        "",
        "| threads | side | batch | speed ratio, median of rounds | range over rounds |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        ratio = _round_ratios(r["latency"], key, ort, mine)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {statistics.median(ratio):.2f}x | {min(ratio):.2f}-{max(ratio):.2f}x |"
        )
    fresh = r.get("fresh_process_64px")
    if fresh:
        lines += [
            "",
            "## A fresh process (one 64 x 64 px image)",
            "",
            "| process | import + load (s) | first call (s) | second call (ms) |",
            "|---|---:|---:|---:|",
        ]
        for label, f in fresh.items():
            lines.append(
                f"| {label} | {f['import_and_load_s']:.2f} | {f['first_call_s']:.3f} | {1e3 * f['second_call_s']:.2f} |"
            )
    a = r.get("agreement")
    if a:
        lines += [
            "",
            "## Agreement with the training-time model",
            "",
            f"On the run's {a['test_images']} NEU-CLS test images: identical predictions "
            f"{100 * a['same_prediction']:.1f}%, largest |logit difference| {a['max_abs_logit_diff']:.2e}, "
            f"activation bits that differ {a['activation_bits_flipped']} of {a['activation_bits']:,}; "
            f"test accuracy PyTorch {100 * a['accuracy_pytorch']:.2f}%, packed {100 * a['accuracy_packed']:.2f}%.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
