"""Export of a trained run: ONNX (parity-checked with onnxruntime) or, for binary classifiers, the
bit-packed format of :mod:`crackscope.deploy.packed` (parity-checked against PyTorch)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from crackscope.engine import pipelines
from crackscope.engine.runs import load_run, run_threshold


def export_onnx(run_dir, out: str | Path | None = None, *, opset: int = 17, batch: int = 2, seed: int = 0) -> dict:
    """Write RUN/export/model.onnx and return {'path', 'max_abs_diff', 'input_shape'}: the largest
    |ONNX Runtime - PyTorch| over random inputs of every checked shape."""
    import onnxruntime as ort

    from crackscope.deploy.onnx_runtime import WEIGHTS_KEY, weights_digest

    cfg, model, geometry = load_run(run_dir)
    out = Path(out) if out else Path(run_dir) / "export" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = pipelines.get(cfg.pipeline)
    name, shapes, axes = pipeline.require("export", "onnx_inputs")(cfg, geometry, batch)
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(s, generator=gen) if name == "image" else torch.randn(s, generator=gen) for s in shapes]
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():  # shape checks in forward() are constants for a fixed geometry
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (inputs[0],),
            str(tmp),
            input_names=[name],
            output_names=["logits"],
            opset_version=opset,
            # a segmentation model's logits keep the input's dynamic axes; a classifier's only the batch
            dynamic_axes={name: axes, "logits": axes if pipeline.segments else {0: "batch"}},
            dynamo=False,
        )
    threshold = run_threshold(run_dir, cfg) if pipeline.segments else None
    meta = {WEIGHTS_KEY: weights_digest(run_dir)}  # which weights: crackscope.deploy.onnx_runtime checks it
    if threshold is not None:  # the model outputs logits; a pixel is a crack where sigmoid(logit) > threshold
        meta |= {"crack_threshold": repr(threshold), "output": "logits (sigmoid -> crack probability)"}
    _add_metadata(tmp, meta)
    tmp.replace(out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(["logits"], {name: x.numpy()})[0]
        if got.shape != expected.shape:
            raise RuntimeError(
                f"ONNX output {got.shape} differs from PyTorch {expected.shape} for input {tuple(x.shape)}"
            )
        worst = max(worst, float(np.abs(got - expected).max()))
    return {"path": str(out), "max_abs_diff": worst, "input_shape": [list(s) for s in shapes], "threshold": threshold}


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    """Write ``props`` into an ONNX file's metadata_props (readable with onnxruntime's modelmeta)."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_packed(run_dir, out: str | Path | None = None, *, batch: int = 2, seed: int = 0) -> dict:
    """Write RUN/export/model.packed.safetensors (1-bit weights, XNOR/popcount inference) and return
    {'path', 'max_abs_diff', 'activation_bits_flipped', 'size_bits', 'input_shape'}; the parity
    check runs the packed and the PyTorch model on random images of the run's input size."""
    from crackscope.deploy.packed import compare_with_model, pack_model, packed_size_bits, save_packed
    from crackscope.errors import InputError

    cfg, model, geometry = load_run(run_dir)
    if pipelines.get(cfg.pipeline).task != "classification":
        raise InputError(f"{run_dir}: only binary classifiers can be bit-packed (this run is a {cfg.pipeline} run)")
    kwargs = {**{k: v for k, v in geometry.items() if k in ("in_channels", "classes")}, **cfg.model.kwargs}
    kwargs.pop("input_norm", None)  # not the network's: pack_model records it for the wrapper
    import json

    split = Path(run_dir) / "split.json"
    classes = json.loads(split.read_text()).get("classes") if split.exists() else None
    packed = pack_model(
        model, {"kwargs": kwargs, "classes": classes, "size": cfg.data.size, "channels": cfg.data.channels}
    )
    out = Path(out) if out else Path(run_dir) / "export" / "model.packed.safetensors"
    name, shapes, _ = pipelines.get(cfg.pipeline).require("export", "onnx_inputs")(cfg, geometry, batch)
    gen = torch.Generator().manual_seed(seed)
    worst, flips, bits = 0.0, 0, 0
    for s in shapes:
        report = compare_with_model(model, packed, torch.rand(s, generator=gen))
        worst = max(worst, report["max_abs_logit_diff"])
        flips, bits = flips + report["activation_bits_flipped"], bits + report["activation_bits"]
    save_packed(packed, out)
    return {
        "path": str(out),
        "max_abs_diff": worst,
        "activation_bits_flipped": flips,
        "activation_bits": bits,
        "size_bits": packed_size_bits(packed),
        "input_shape": [list(s) for s in shapes],
    }


def image_model_session(model, path: str | Path, example, threads: int, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session of an image classifier ``model`` (N, C, H, W) -> (N, classes),
    exported to ``path`` (opset 17, input ``image`` with dynamic batch, height and width, output
    ``logits``) and run on ``threads`` intra-op threads; ``profile_prefix``: turn on ORT's profiler,
    writing there (``session.end_profiling()`` returns the file). For benchmarks against the
    packed runtime."""
    import onnxruntime as ort

    from crackscope.deploy.onnx_runtime import export_image_model

    Path(path).write_bytes(export_image_model(model, example))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    if profile_prefix is not None:
        opts.enable_profiling, opts.profile_file_prefix = True, str(profile_prefix)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
