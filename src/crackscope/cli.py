"""The ``crackscope`` command: one verb per job, thin wrappers over the library.

Exit codes: 0 success, 2 bad input (one line naming the bad value or file), 1 internal failure.
Set ``CRACKSCOPE_DEBUG=1`` to see the traceback of an internal failure.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer

from crackscope import __version__
from crackscope.deploy.inspect_options import InspectOptions  # light (no torch): the inspect-image options
from crackscope.engine import pipelines  # light (no torch): what each pipeline reads, for --data / --format help
from crackscope.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="crackscope: deep-learning detection of defects and micro-cracks.",
)
simulate_app = typer.Typer(no_args_is_help=True, help="Generate labelled datasets from physics simulators.")
app.add_typer(simulate_app, name="simulate")


class Preset(str, Enum):
    paper = "paper"
    small = "small"
    tiny = "tiny"


class Backend(str, Enum):
    local = "local"
    ray = "ray"


def _info(msg: str) -> None:
    typer.echo(msg, err=True)


_MODEL_HELP = (
    "A run directory written by 'crackscope train', a model folder, or the name of a shipped model "
    "(e.g. sd-saliency-900/unet_cbam; 'crackscope models' lists them)."
)


@simulate_app.command("wavefield")
def simulate_wavefield_cmd(
    out: Path = typer.Option(..., "--out", help="Zarr store directory to create or finish."),
    samples: int = typer.Option(..., "--samples", help="Number of plates to simulate."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        metavar="<paper|small|paper-multi|small-multi|tiny>",
        help="paper (default): one notch per plate, the paper's task; small: the same at CPU scale; "
        "paper-multi / small-multi: many line cracks per plate; tiny: tests.",
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML file of PlateConfig fields (may set 'preset')."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a field: --set poisson_ratio=0.25 --set cracks.count_max=3"
    ),
    seed: int = typer.Option(0, "--seed", help="Sample i depends only on (seed, i)."),
    batch: int = typer.Option(8, "--batch", help="Plates simulated together; also the resume granularity."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes."),
    backend: Backend = typer.Option(Backend.local, "--backend", help="local processes or a Ray cluster."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
):
    """Simulate cracked plates recorded by the sensor grid; re-run the same command to resume."""
    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.physics.config import load_plate_config

    cfg = load_plate_config(preset, config, set_)
    if backend is Backend.ray and workers != 1:
        raise InputError("--workers and --backend ray are exclusive: Ray uses the cluster's CPUs")
    summary = generate_wavefield_store(
        out,
        cfg,
        samples,
        seed=seed,
        batch=batch,
        device=device,
        workers=workers,
        backend=backend.value,
        address=address,
        log=_info,
    )
    _info(
        f"wrote {summary['n_done']} samples to {out} "
        f"(mean crack-pixel fraction {summary['mean_crack_pixel_fraction']:.2%})"
    )


@simulate_app.command("harmonics")
def simulate_harmonics_cmd(
    out: Path = typer.Option(..., "--out", help="Zarr store directory to create or finish."),
    samples: int = typer.Option(..., "--samples", help="Number of plates (each with one micro-crack group)."),
    preset: Preset | None = typer.Option(None, "--preset", help="paper (default), small or tiny."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of HarmonicsConfig fields (may set 'preset')."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set crack_gap=1e-11"),
    seed: int = typer.Option(
        0, "--seed", help="Sample i (its label, crack count, size and layout) depends only on (seed, i)."
    ),
    batch: int = typer.Option(8, "--batch", help="Plates simulated together; also the resume granularity."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes."),
):
    """Simulate plates with clapping micro-crack groups; store the 2nd/3rd harmonics of sensors a, b, c.
    Re-run the same command to resume."""
    from crackscope.data.harmonics_store import generate_harmonics_store
    from crackscope.physics.harmonics_config import load_harmonics_config

    cfg = load_harmonics_config(preset.value if preset else None, config, set_)
    summary = generate_harmonics_store(
        out, cfg, samples, seed=seed, batch=batch, device=device, workers=workers, log=_info
    )
    _info(f"wrote {summary.get('n_done', samples)} samples to {out}")


@app.command("inspect")
def inspect_cmd(
    store: Path = typer.Argument(..., help="A wave-field store written by 'crackscope simulate wavefield'."),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write summary.json and inspect.png (default: STORE/../<name>-inspect)."
    ),
    sample: int | None = typer.Option(
        None, "--sample", help="Sample to plot (default: the one with the largest crack)."
    ),
    device: str = typer.Option("cpu", "--device", help="Device for re-simulating the snapshots."),
):
    """Print counts, crack-size histogram and crack-pixel fraction; write a figure of one sample."""
    from crackscope.analysis.inspect import format_summary, inspect_store

    out = out or store.parent / f"{store.name.removesuffix('.zarr')}-inspect"
    summary = inspect_store(store, out, sample=sample, device=device)
    typer.echo(format_summary(summary))
    typer.echo(f"figure: {out / 'inspect.png'}")


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", help="Training YAML (e.g. configs/wavefield/mcan.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN from its last checkpoint (or start it)."),
    devices: int | None = typer.Option(None, "--devices", help="Devices per node; > 1 uses Lightning DDP."),
    num_nodes: int | None = typer.Option(None, "--num-nodes", help="Machines; > 1 uses Lightning DDP."),
):
    """Train a model: crackscope train --config FILE [key=value ...]."""
    from crackscope.engine.config import load_train_config
    from crackscope.engine.train import train

    overrides = list(ctx.args)
    if devices is not None:
        overrides.append(f"trainer.devices={devices}")
    if num_nodes is not None:
        overrides.append(f"trainer.num_nodes={num_nodes}")
    cfg = load_train_config(config, overrides)
    run_dir = train(cfg, resume=resume)
    _info(f"run: {run_dir} (metrics.json, figures/, model.safetensors)")


# --data / --format help from the pipeline registry (what each pipeline reads)
_EVALUATE_DATA_HELP = "Labelled data, by the model's pipeline: " + pipelines.data_help("evaluate")
_PREDICT_DATA_HELP = "Data to predict on, by the model's pipeline: " + pipelines.data_help("predict")
_FORMAT_HELP = (
    "Data layout, by the model's pipeline: "
    + pipelines.format_help()
    + " Default: the model's training format (for a model trained on several datasets, that of the one at --data)."
)


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help=_MODEL_HELP),
    data: Path = typer.Option(
        ...,
        "--data",
        help=_EVALUATE_DATA_HELP,
    ),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json and figures/."),
    format: str | None = typer.Option(
        None,
        "--format",
        help=_FORMAT_HELP,
    ),
):
    """Metrics of a trained model on labelled data, with a figure (examples or confusion matrix)."""
    from crackscope.shipped import resolve

    run, name = resolve(run)
    pipeline = pipelines.of_run(run)
    evaluate = pipeline.require("evaluate", "evaluate")
    if format is not None and format not in pipeline.formats:
        raise InputError(
            f"--format {format} does not apply to {name}, a {pipeline.name} model"
            + (f" (use {', '.join(pipeline.formats)})" if pipeline.formats else " (it takes no --format)")
        )
    result = evaluate(run, data, out, format)
    for line in pipeline.require("evaluate", "report")(result, out):
        typer.echo(line)


@app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", help=_PREDICT_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Output directory."),
):
    """Predict: surface -> OUT/masks/*.png, OUT/overlays/*.png at original size; classify -> OUT/predictions.csv
    (class and probabilities per image); wave field -> predictions.npz."""
    from crackscope.shipped import resolve

    run = resolve(run)[0]
    typer.echo(pipelines.of_run(run).require("predict", "predict")(run, data, out, _info))


class ExportFormat(str, Enum):
    onnx = "onnx"
    packed = "packed"


def _inspect_option(name: str):
    """The ``crackscope inspect-image`` option ``name``: its flag, default and help, as InspectOptions holds them."""
    field = InspectOptions.model_fields[name]
    return typer.Option(field.default, InspectOptions.flag(name), help=field.description)


@app.command("inspect-image")
def inspect_image_cmd(
    image: Path = typer.Argument(
        ..., help="An image (any Pillow format, grey or RGB, any size), or a folder of images (each into OUT/<stem>/)."
    ),
    classifier: Path | None = typer.Option(
        None,
        "--classifier",
        help="Crack / no-crack tile classifier: a classify run, a model folder or a shipped name (default: the "
        "shipped pair's, cracks/tile_classifier; none with --all-tiles).",
    ),
    segmenter: Path | None = typer.Option(
        None,
        "--segmenter",
        help="Segmenter: a surface run, a model folder or a shipped name (default: the shipped pair's, "
        "cracks/segmenter, trained on DeepCrack and Crack500 photos).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Directory for mask.png, overlay.png, tiles.csv, cracks.csv and summary.json (a folder: "
        "OUT/<stem>/ per image, OUT/summary.csv, OUT/index.html to open in a browser, OUT/skipped.txt).",
    ),
    tile: int | None = _inspect_option("tile"),
    threshold: float | None = _inspect_option("threshold"),
    all_tiles: bool = _inspect_option("all_tiles"),
    runtime: str = _inspect_option("runtime"),
    mm_per_pixel: float | None = _inspect_option("mm_per_pixel"),
    window: int | None = _inspect_option("window"),
    overlap: float | None = _inspect_option("overlap"),
    batch: int = _inspect_option("batch"),
    follow: int = _inspect_option("follow"),
    follow_threshold: float = _inspect_option("follow_threshold"),
    scale: float = _inspect_option("scale"),
    tta: str = _inspect_option("tta"),
):
    """Cascaded crack inspection: a binary tile classifier screens the image, the segmenter runs on overlapping
    windows around the flagged tiles only, blended without seams at full resolution. Each connected crack is
    measured (skeleton length, max / mean width, area, bounding box) in cracks.csv; the longest are labelled
    on the overlay. Given a folder, every image in it, with OUT/summary.csv (unreadable ones are skipped and
    listed in OUT/skipped.txt) and OUT/index.html, a report to open in a browser, worst photos first. Without
    --segmenter and --classifier: the shipped crack pair ('crackscope models')."""
    from crackscope.deploy.cascade import inspect_folder, inspect_image_file
    from crackscope.shipped import DEFAULT_PAIR, folder

    options = InspectOptions.parse(
        dict(
            tile=tile,
            threshold=threshold,
            all_tiles=all_tiles,
            runtime=runtime,
            mm_per_pixel=mm_per_pixel,
            window=window,
            overlap=overlap,
            batch=batch,
            follow=follow,
            follow_threshold=follow_threshold,
            scale=scale,
            tta=tta,
        )
    )
    segmenter = segmenter if segmenter is not None else folder(DEFAULT_PAIR, "segmenter")
    if classifier is None and not options.all_tiles:
        classifier = folder(DEFAULT_PAIR, "classifier")
    if image.is_dir():
        done = inspect_folder(image, segmenter, out, classifier_path=classifier, options=options, log=_info)
        typer.echo(
            f"{len(done['rows'])} of {done['files']} images inspected, {len(done['skipped'])} skipped; "
            f"{sum(r['crack_count'] for r in done['rows'])} cracks in all"
        )
        skipped = f", {out}/skipped.txt" if done["skipped"] else ""
        _info(f"wrote {out}/index.html (open it in a browser), {out}/summary.csv{skipped} and a folder per image")
        return
    s = inspect_image_file(image, segmenter, out, classifier_path=classifier, options=options)
    t = s["timings_s"]
    scaled = f" at scale {s['scale']:g}" if s["scale"] != 1 else ""
    typer.echo(
        f"{s['width']} x {s['height']}{scaled}: {s['flagged']} of {s['tiles']} tiles of {s['tile']} px flagged "
        f"({s['mode']}), {s['windows_segmented']} of {s['windows']} windows of {s['window']} px segmented, "
        f"{s['crack_pixels']} crack pixels ({s['crack_fraction']:.2%}); "
        f"{t['total_s']:.3f} s (classify {t['classify_s']:.3f} s, segment {t['segment_s']:.3f} s)"
    )
    c = s["cracks"]
    unit = "mm" if c["mm_per_pixel"] is not None else "px"
    longest = f"; longest {c['largest'][0][f'length_{unit}']:g} {unit}" if c["largest"] else ""
    typer.echo(f"{c['count']} cracks, total length {c[f'total_length_{unit}']:g} {unit}{longest}")
    _info(f"wrote {out}/mask.png, overlay.png, tiles.csv, cracks.csv, summary.json")


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help=_MODEL_HELP),
    format: ExportFormat = typer.Option(
        ExportFormat.onnx, "--format", help="onnx, or packed (binary classifiers: 1-bit weights, XNOR/popcount)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output file (default RUN/export/model.onnx or RUN/export/model.packed.safetensors; for a shipped "
        "model export/NAME/... in the current folder).",
    ),
):
    """Export a trained model (ONNX, or bit-packed for binary networks) and check it against PyTorch."""
    from crackscope.shipped import resolve

    run, name = resolve(run)
    if out is None and name != str(run):  # a shipped model: never write into the installed package
        out = Path("export") / name / ("model.packed.safetensors" if format == ExportFormat.packed else "model.onnx")
    if format == ExportFormat.packed:
        from crackscope.deploy.export import export_packed

        r = export_packed(run, out)
        size = r["size_bits"]
        typer.echo(
            f"wrote {r['path']} ({size['total_bits'] / 1e6:.3f} Mbit: {size['weight_sign_bits']} weight "
            f"sign bits + {size['float32_values']} float32 values); parity on {r['input_shape']}: "
            f"max |packed - torch| = {r['max_abs_diff']:.3g}, activation bits flipped "
            f"{r['activation_bits_flipped']} of {r['activation_bits']}"
        )
        return
    from crackscope.deploy.export import export_onnx

    result = export_onnx(run, out)
    point = (
        ""
        if result["threshold"] is None
        else (f" (outputs logits; crack where sigmoid > {result['threshold']:g}, metadata 'crack_threshold')")
    )
    typer.echo(
        f"wrote {result['path']}{point}; parity on {result['input_shape']}: "
        f"max |onnx - torch| = {result['max_abs_diff']:.3g}"
    )


@app.command("grid", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def grid_cmd(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Grid YAML (e.g. configs/wavefield/activation_loss_grid.yaml)."),
    backend: Backend = typer.Option(Backend.local, "--backend", help="local (sequential or --workers) or ray."),
    workers: int = typer.Option(1, "--workers", help="Local processes running runs in parallel."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address."),
):
    """Run an experiment grid; finished runs are skipped; writes results.csv and table.md."""
    from crackscope.engine.grid import run_grid

    result = run_grid(config, list(ctx.args), backend=backend.value, workers=workers, address=address, log=_info)
    typer.echo(result["table"].rstrip())
    _info(f"results: {result['out_dir']}/results.csv and table.md")


@app.command("harmonics-study")
def harmonics_study_cmd(
    store: Path = typer.Argument(
        ...,
        help="A finished store written by 'crackscope simulate harmonics', or a folder "
        "of measured signals with manifest.csv (channels h2, h3; "
        "docs/harmonics_pipeline.md).",
    ),
    out: Path = typer.Option(..., "--out", help="Study directory (resplits/, results.json, table.md, confusion.png)."),
    resplits: int = typer.Option(100, "--resplits", help="Random stratified train/validation/test re-splits."),
    epochs: int = typer.Option(600, "--epochs", help="Training epochs of every network."),
    seed: int = typer.Option(0, "--seed", help="Re-split r and its initial weights depend only on (seed, r)."),
    sensors: str | None = typer.Option(
        None, "--sensors", help="Comma-separated sensors (default: all of the data's); multi-sensor rows need >= 2."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Training mini-batch size."),
    init: str = typer.Option("default", "--init", help="Weight initialisation: default (PyTorch's) or paper."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
):
    """The harmonics paper's re-split protocol: single-harmonic, data-, feature- and decision-level fusion per
    sensor, multi-sensor fusion; mean ± std test accuracy. Finished re-splits are skipped on re-run."""
    result = pipelines.get("harmonics").study(
        store,
        out,
        resplits=resplits,
        epochs=epochs,
        seed=seed,
        sensors=sensors,
        batch_size=batch_size,
        init=init,
        device=device,
        threads=threads,
        log=_info,
    )
    typer.echo(result["table"].rstrip())
    _info(f"results: {result['out_dir']}/results.json, table.md and confusion.png")


@app.command("mda")
def mda_cmd(
    runs: list[Path] = typer.Argument(..., help="One or more run directories (e.g. one per activation)."),
    layers: str | None = typer.Option(None, "--layers", help="Comma-separated module names (default: bottleneck,up2)."),
    out: Path = typer.Option(..., "--out", help="Figure path for one run; a directory for several (one figure each)."),
    data: Path | None = typer.Option(
        None, "--data", help="Store to draw samples from (default: the run's test+val split)."
    ),
    max_samples: int = typer.Option(300, "--max-samples", help="Samples embedded per panel."),
    reference: str = typer.Option("targets", "--reference", help="Distances on 'targets' (masks) or model 'outputs'."),
):
    """Manifold Discovery and Analysis: untrained vs trained feature manifolds per layer."""
    from crackscope.engine.mda_run import default_layers, mda_for_run

    for run in runs:
        names = [n.strip() for n in layers.split(",") if n.strip()] if layers else default_layers(run)
        target = out if len(runs) == 1 else out / f"mda-{run.name}.png"
        path = mda_for_run(run, names, target, data=data, max_samples=max_samples, reference=reference)
        typer.echo(f"figure: {path}")


@app.command("models")
def models_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON (what GET /api/models returns)."),
):
    """The models shipped inside crackscope, by name: task, input, operating point, the headline number measured
    on held-out data, and the licence of the data each was trained on. A name goes wherever a run or model folder
    does (evaluate, predict, export, inspect-image)."""
    import json

    from crackscope.shipped import MODELS, PAIRS, describe

    rows = [describe(name) for name in MODELS]
    if as_json:
        typer.echo(json.dumps({"pairs": PAIRS, "models": rows}, indent=2))
        return
    for r in rows:
        pair = f"  (half of the pair '{r['pair']}')" if r["pair"] else ""
        typer.echo(f"{r['name']}{pair}")
        typer.echo(f"  task:            {r['task']}")
        typer.echo(f"  input:           {r['input']}")
        typer.echo(f"  operating point: {r['operating_point']}")
        typer.echo(f"  measured:        {r['headline_text']}")
        for d in r["trained_on"]:
            typer.echo(f"  trained on:      {d['dataset']}: {d['licence']} ({d['cite']})")
    pairs = "; ".join(f"{name}: {what}" for name, what in PAIRS.items())
    typer.echo(f"pairs for inspect-image (segmenter + tile classifier): {pairs}")


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this computer only)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free port)."),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="The one folder (and its sub-folders) whose photos the page may inspect by path (default: the "
        "current folder).",
    ),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest photo accepted, in MB."),
):
    """A local web page and HTTP API: drop photos (or name a folder under --root), see each overlay with its
    crack table, download the report as a zip. It runs the same library calls as inspect-image."""
    from crackscope.serve import serve

    serve(host=host, port=port, root=root or Path.cwd(), max_upload_mb=max_upload_mb, log=_info)


@app.command("compile-kernels")
def compile_kernels_cmd(
    threads: str = typer.Option("1,2", help="thread counts to compile for, comma-separated"),
):
    """Compile the bit-packed kernels into numba's on-disk cache now (make install runs this), so that
    no process pays the compilation on its first packed image."""
    from crackscope.deploy.warmup import compile_kernels

    try:
        counts = tuple(int(t) for t in threads.split(","))
    except ValueError:
        raise InputError(f"--threads {threads!r} must be comma-separated whole numbers, e.g. 1,2") from None
    done = compile_kernels(counts)
    typer.echo(
        f"compiled the packed kernels for {len(done['models'])} shipped networks on {done['threads']} thread(s) "
        f"in {done['seconds']:.1f} s ({done['instruction_set']})"
    )


@app.command("version")
def version_cmd():
    """Print the crackscope version."""
    typer.echo(__version__)


class Criterion(str, Enum):
    true = "true"
    all = "all"


@app.command("choose-operating-point")
def choose_operating_point_cmd(
    classifier: Path = typer.Argument(
        ...,
        help="The crack / no-crack tile classifier: a classify run or model folder; its operating_point.json "
        "is written.",
    ),
    segmenter: Path = typer.Option(
        ...,
        "--segmenter",
        help="The segmenter it screens for: a surface run, a model folder or a shipped name (cracks/segmenter), "
        "recording the same validation and test images (trained with the same seed and split).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="The dataset folder of a one-source segmenter run (default: its config's data.root)."
    ),
    target_share: float = typer.Option(
        0.98,
        "--target-share",
        help="Share of the --criterion pixels that the cascade's final region must keep on the validation images.",
    ),
    margin: float = typer.Option(0.0, "--margin", help="Added to --target-share when choosing (a safety margin)."),
    criterion: Criterion = typer.Option(
        Criterion.true,
        "--criterion",
        help="The threshold written: true (the crack pixels all-tiles segmentation finds: marked and crack in "
        "the ground truth) or all (every pixel it marks, false alarms included). Both are recorded.",
    ),
    tile: int | None = typer.Option(None, "--tile", help="Tile side in pixels (default: the classifier's, 64)."),
    window: int | None = typer.Option(
        None,
        "--window",
        help="Segmentation window side in pixels (default: the segmenter's training crop, else the tile side).",
    ),
    overlap: float = typer.Option(
        0.0, "--overlap", help="Overlap of neighbouring windows, a fraction of the window in [0, 0.5] (0: stitched)."
    ),
    survey: int | None = typer.Option(
        None,
        "--survey",
        help="Choose on this many 1024-px survey-like images made of the validation photos (5-15 %% crack "
        "tiles, the rest crack-free surface: crackscope.data.survey_mosaics) instead of the photos themselves.",
    ),
):
    """Choose the cascade's operating point on the validation images: the highest classifier threshold at which
    the cascade still keeps --target-share of the pixels that segmenting every window finds. Writes
    CLASSIFIER/operating_point.json, whose threshold, window and overlap inspect-image then uses by default.
    The test images play no part."""
    from crackscope.deploy.operating_point import CRITERIA, choose_operating_point, write_operating_point
    from crackscope.shipped import resolve

    segmenter, segmenter_name = resolve(segmenter)  # only read; the classifier, which is written, is a folder
    point = choose_operating_point(
        classifier,
        segmenter,
        segmenter_name=segmenter_name,
        data=data,
        target_share=target_share,
        margin=margin,
        criterion=criterion.value,
        tile=tile,
        window=window,
        overlap=overlap,
        survey=survey,
    )
    path = write_operating_point(classifier, point)
    for key in CRITERIA:
        o = point[key]
        chosen = " (written)" if key == point["default"] else ""
        typer.echo(
            f"{key}{chosen}: threshold {o['threshold']:.4f} keeps {o['share']:.4f} (>= {point['required_share']:g}), "
            f"flags {o['flagged_fraction']:.3f} of {point['n_tiles']} tiles, runs {o['windows_fraction']:.3f} of "
            f"the {point['window']}-px windows; {point['n_images']} "
            + ("validation images" if point["chosen_on"] == "validation" else "survey-like images of them")
        )
    _info(f"wrote {path}")


@app.command("ensemble")
def ensemble_cmd(
    members: list[Path] = typer.Argument(
        ..., help="Two or more crack / no-crack tile classifiers (classify runs, model folders or shipped names)."
    ),
    out: Path = typer.Option(..., "--out", help="The ensemble folder to write (must not exist)."),
):
    """Make a tile classifier ensemble: the cascade screens with the mean crack probability of the members
    (copied into OUT/members/). Choose its operating point next: crackscope choose-operating-point OUT ..."""
    from crackscope.deploy.cascade import write_ensemble

    done = write_ensemble(out, [str(m) for m in members])
    typer.echo(f"wrote {done} ({len(members)} members); choose its operating point with choose-operating-point")


@app.command("package")
def package_cmd(
    run: Path = typer.Argument(..., help="A run directory written by 'crackscope train'."),
    out: Path = typer.Option(
        ..., "--out", help="The model folder to write (e.g. src/crackscope/weights/cracks/segmenter)."
    ),
    packed: bool = typer.Option(
        False,
        "--packed",
        help="Also write model.packed.safetensors (binary classifiers: 1-bit weights, XNOR/popcount).",
    ),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Also write model.onnx (image classifiers: what inspect-image's ONNX Runtime screen reads, instead "
        "of exporting it each time it loads).",
    ),
    readme: Path | None = typer.Option(
        None,
        "--readme",
        help="A README.md to ship as it is (default: one is written with the test metrics and the commands "
        "that reproduce the folder).",
    ),
    reproduce: list[str] | None = typer.Option(
        None,
        "--reproduce",
        metavar="CMD",
        help="A command that reproduces the model, for the written README; repeat it for several (default: "
        "train with the packaged config.yaml, choose-operating-point when the run's operating point came "
        "from it, then this packaging).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out as a whole when it exists and is not empty."),
):
    """Package a trained run as a shipped model folder: config.yaml, model.safetensors, and split.json,
    metrics.json, operating_point.json and simulate.yaml as the run has them, with a README naming the
    commands that reproduce it. Checkpoints and logs stay behind; the folder appears whole or not at all."""
    from crackscope.deploy.package import package_model

    text = None
    if readme is not None:
        if not readme.is_file():
            raise InputError(f"--readme {readme}: no such file")
        text = readme.read_text()
    done = package_model(run, out, readme=text, reproduce=reproduce or None, packed=packed, onnx=onnx, replace=force)
    typer.echo(f"wrote {done['path']}: {', '.join(done['files'])}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, mapping bad input to exit code 2 with one line, no traceback."""
    from pydantic import ValidationError

    from crackscope.allocator import keep_large_blocks
    from crackscope.errors import format_validation_error

    keep_large_blocks()  # layer outputs reuse freed pages instead of fresh mmaps (crackscope.allocator)
    try:
        app(args=argv, standalone_mode=False)
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        return 2
    except ValidationError as err:
        typer.echo(f"error: {format_validation_error(err)}", err=True)
        return 2
    except typer.Exit as err:
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted; re-run the same command to resume", err=True)
        return 130
    except Exception as err:
        usage_error = getattr(err, "exit_code", None) is not None and hasattr(err, "show")
        if usage_error:  # typer/click usage errors (bad option value, missing option): exit 2
            typer.echo(f"error: {err.format_message()}", err=True)
            return err.exit_code
        if os.environ.get("CRACKSCOPE_DEBUG"):
            raise
        typer.echo(f"internal error: {type(err).__name__}: {err} (set CRACKSCOPE_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
