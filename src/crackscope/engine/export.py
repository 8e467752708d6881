"""ONNX export of a trained run, with a parity check against PyTorch (onnxruntime)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from crackscope.engine.runs import load_run


def export_onnx(run_dir, out: str | Path | None = None, *, opset: int = 17, batch: int = 2, seed: int = 0) -> dict:
    """Write RUN/export/model.onnx (dynamic batch) and return {'path', 'max_abs_diff'} on random inputs."""
    import onnxruntime as ort

    cfg, model, geometry = load_run(run_dir)
    out = Path(out) if out else Path(run_dir) / "export" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    shape = (batch, 2, int(geometry["n_time"]), int(geometry["n_sensors"]))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():  # shape checks in forward() are constants for a fixed geometry
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (x,), str(tmp), input_names=["wavefield"], output_names=["logits"],
                          opset_version=opset, dynamic_axes={"wavefield": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    tmp.replace(out)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"wavefield": x.numpy()})[0]
    return {"path": str(out), "max_abs_diff": float(np.abs(got - expected).max()), "input_shape": list(shape)}
