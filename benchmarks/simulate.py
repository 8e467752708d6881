"""Speed benchmark of crackscope's wave-field simulator, with a Devito elastic FD solver for reference.

    .venv/bin/python benchmarks/simulate.py                 # full paper preset (2000 samples), CPU
    .venv/bin/python benchmarks/simulate.py --steps 500     # shorter runs
    .venv/bin/python benchmarks/simulate.py --device cuda   # crackscope on the GPU (skipped if none)

Measures ``simulate_wavefield`` on the ``paper`` preset for a few batch sizes (samples/s and
node-updates/s = nodes * steps * batch / s) and, when Devito is installed (the ``bench`` extra), a
2-D isotropic elastic velocity-stress staggered-grid solver on a grid with as many points as the
lattice has nodes, for the same number of steps and threads. Writes benchmarks/results/simulate.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from crackscope.io import atomic_write_text
from crackscope.provenance import CpuLoad, available_cpus, cpu_name, git_commit

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "simulate.json"


def _devito_elastic():
    """benchmarks/_devito_elastic.py, the Devito reference solver, loaded from its file (it is a
    helper of this study, not an installed module)."""
    path = HERE / "_devito_elastic.py"
    spec = importlib.util.spec_from_file_location("_devito_elastic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="recorded time samples n_time (the preset's 2000 if omitted); steps = n_time - 1",
    )
    p.add_argument("--batch-sizes", default="1,4,8", help="comma-separated batch sizes (default 1,4,8)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the best is reported")
    p.add_argument("--device", default="cpu", help="torch device for crackscope: cpu or cuda")
    p.add_argument(
        "--threads", type=int, default=None, help="torch and OpenMP threads (default: the CPUs this process may use)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random cracks")
    p.add_argument("--no-devito", action="store_true", help="skip the Devito comparison")
    p.add_argument("--devito-space-order", type=int, default=4, choices=(2, 4, 8), help="Devito FD order in space")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    args.batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",") if b.strip()})
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        p.error("--batch-sizes needs positive integers")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.steps is not None and args.steps < 2:
        p.error("--steps must be >= 2")
    return args


BUSY_WARNING = 0.05  # warn when other processes took more than this fraction of the CPUs


# ---- crackscope ---------------------------------------------------------------------------------


def bench_crackscope(args, torch) -> dict:
    import numpy as np

    from crackscope.physics import PlateConfig, simulate_wavefield
    from crackscope.physics.cracks import sample_cracks

    device = torch.device(args.device)
    overrides = {} if args.steps is None else {"n_time": args.steps}
    cfg = PlateConfig.preset("paper", **overrides)
    warm_cfg = PlateConfig.preset("paper", n_time=min(cfg.n_time, 21))
    one_step_cfg = PlateConfig.preset("paper", n_time=2)
    lattice = cfg.lattice()

    params = inspect.signature(simulate_wavefield).parameters
    # On the CPU, the fused numba kernel (the default) and the torch reference implementation.
    variants = [{}]
    if "backend" in params and device.type == "cpu":
        variants = [{"backend": "numba"}, {"backend": "torch"}]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rng = np.random.default_rng(args.seed)
    runs = []
    for variant in variants:
        for batch in args.batch_sizes:
            cracks = [sample_cracks(cfg.cracks.distribution(), cfg.width, cfg.height, rng) for _ in range(batch)]
            simulate_wavefield(warm_cfg, cracks, device=device, **variant)  # warm-up (and compile, if any)
            sync()
            t0 = time.perf_counter()  # a one-step run: mostly set-up (bond cutting, masks), included in the timings
            simulate_wavefield(one_step_cfg, cracks, device=device, **variant)
            sync()
            setup_s = time.perf_counter() - t0
            seconds, out = [], None
            with CpuLoad() as load:
                for _ in range(args.repeats):
                    sync()
                    t0 = time.perf_counter()
                    out = simulate_wavefield(cfg, cracks, device=device, **variant)
                    sync()
                    seconds.append(time.perf_counter() - t0)
            if not bool(torch.isfinite(out.signals).all()):
                raise FloatingPointError(f"crackscope signals are not finite at batch {batch}")
            best = min(seconds)
            updates = out.n_nodes * out.n_steps * batch
            runs.append(
                {
                    **({"backend": variant["backend"]} if variant else {}),
                    "batch": batch,
                    "n_nodes": out.n_nodes,
                    "n_steps": out.n_steps,
                    "cracks_per_plate": [len(c) for c in cracks],
                    "seconds": seconds,
                    "best_seconds": best,
                    "median_seconds": statistics.median(seconds),
                    "one_step_run_seconds": setup_s,
                    "samples_per_s": batch / best,
                    "node_updates_per_s": updates / best,
                    "node_updates_per_s_median": updates / statistics.median(seconds),
                    **load.record(),
                }
            )
            del out
    return {
        "preset": "paper",
        "lattice_shape": list(lattice.shape),
        "n_time": cfg.n_time,
        "dt_s": cfg.dt,
        "dtype": cfg.dtype,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "backends": [v.get("backend", "auto") for v in variants],
        "timed": "the whole simulate_wavefield call: crack rasterisation/bond cutting, time stepping, sensor recording",
        "runs": runs,
    }


# ---- Devito ----------------------------------------------------------------------------------------


def bench_devito(
    args, shape_xy: tuple[int, int], extent: tuple[float, float], n_steps: int, frequency: float, material: dict
) -> dict:
    try:
        import devito  # noqa: F401  (version check / clear error message before building anything)
    except Exception as exc:  # ImportError, or a broken install
        return {
            "error": f"devito is not importable ({type(exc).__name__}: {exc}); install it with "
            f"'.venv/bin/pip install -c constraints.txt devito' where constraints.txt pins torch==2.13.0"
        }
    try:
        devito_elastic = _devito_elastic()

        with CpuLoad() as load:  # includes building and compiling the operator, hence only a rough indicator
            res = devito_elastic.run(
                shape_xy,
                extent,
                n_steps,
                E=material["E"],
                nu=material["nu"],
                rho=material["rho"],
                f0=frequency,
                space_order=args.devito_space_order,
                threads=args.threads,
                repeats=args.repeats,
            )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    d = res.to_dict()
    d.update(load.record())
    d["point_updates_per_s_median"] = res.grid_points * res.n_steps / statistics.median(res.seconds)
    d["scheme"] = (
        f"2-D isotropic elastic velocity-stress, staggered grid, space order {res.space_order}, "
        "leapfrog in time, plane-stress Lamé constants, point force (Ricker), no absorbing boundary"
    )
    d["timed"] = "op.apply only (JIT compilation done before timing; one short warm-up apply)"
    d["env"] = {k: os.environ.get(k) for k in ("DEVITO_LANGUAGE", "DEVITO_ARCH", "OMP_NUM_THREADS")}
    if args.threads > 1:
        # Supplementary: the same operator on one thread (small grids may not gain from more OpenMP threads).
        try:
            one = devito_elastic.run(
                shape_xy,
                extent,
                n_steps,
                E=material["E"],
                nu=material["nu"],
                rho=material["rho"],
                f0=frequency,
                space_order=args.devito_space_order,
                threads=1,
                repeats=args.repeats,
            )
            d["one_thread"] = {
                "seconds": one.seconds,
                "best_seconds": one.best_seconds,
                "point_updates_per_s": one.point_updates_per_s,
            }
        except Exception as exc:
            d["one_thread"] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)
    return d


# ---- main ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    args.threads = args.threads or available_cpus()
    # Thread counts and Devito's backend must be fixed before torch / Devito are imported.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("DEVITO_LANGUAGE", "openmp")
    os.environ.setdefault("DEVITO_ARCH", "gcc")
    os.environ.setdefault("DEVITO_LOGGING", "WARNING")

    import torch

    torch.set_num_threads(args.threads)
    from crackscope.physics import PlateConfig

    report = {
        "benchmark": "crackscope simulate_wavefield vs Devito elastic FD",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "hardware": {
            "cpu_model": cpu_name(),
            "logical_cpus": os.cpu_count(),
            "cpus_available": available_cpus(),
            "machine": platform.machine(),
            "cuda_available": torch.cuda.is_available(),
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_num_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "settings": {
            "batch_sizes": args.batch_sizes,
            "repeats": args.repeats,
            "seed": args.seed,
            "steps_arg": args.steps,
            "threads": args.threads,
        },
        "notes": [],
    }

    cfg = PlateConfig.preset("paper", **({} if args.steps is None else {"n_time": args.steps}))
    lattice = cfg.lattice()
    n_steps = cfg.n_steps

    crack = None
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        report["crackscope"] = {"skipped": f"--device {args.device} requested but CUDA is not available"}
        report["notes"].append("crackscope was not measured: CUDA is not available on this machine")
    else:
        try:
            crack = bench_crackscope(args, torch)
            report["crackscope"] = crack
            n_steps = crack["runs"][0]["n_steps"]
        except Exception as exc:
            report["crackscope"] = {"error": f"{type(exc).__name__}: {exc}"}

    if args.no_devito:
        report["devito"] = {"skipped": "--no-devito"}
    else:
        material = {"E": cfg.youngs_modulus, "nu": cfg.poisson_ratio, "rho": cfg.density}
        shape_xy = (lattice.n_cols, lattice.n_rows)  # Devito's first dimension is x
        report["devito"] = bench_devito(args, shape_xy, (cfg.width, cfg.height), n_steps, cfg.frequency, material)

    # crackscope / Devito at batch 1 and at crackscope's fastest batch.
    comparisons = []
    dv = report["devito"]
    if crack and "point_updates_per_s" in dv:
        if crack["device"] != "cpu":
            report["notes"].append(
                "Devito runs on the CPU; the ratio compares crackscope on "
                f"{crack['device']} with Devito on {dv['threads']} CPU threads"
            )
        for variant_runs in _by_variant(crack["runs"]):
            picks = [r for r in variant_runs if r["batch"] == 1][:1]
            best = max(variant_runs, key=lambda r: r["node_updates_per_s"])
            if best not in picks:
                picks.append(best)
            for r in picks:
                comparisons.append(
                    {
                        **({"backend": r["backend"]} if "backend" in r else {}),
                        "crackscope_batch": r["batch"],
                        "label": "batch 1" if r["batch"] == 1 else f"best batch ({r['batch']})",
                        "crackscope_node_updates_per_s": r["node_updates_per_s"],
                        "devito_point_updates_per_s": dv["point_updates_per_s"],
                        "ratio_crackscope_over_devito": r["node_updates_per_s"] / dv["point_updates_per_s"],
                        **(
                            {
                                "ratio_crackscope_over_devito_one_thread": r["node_updates_per_s"]
                                / dv["one_thread"]["point_updates_per_s"]
                            }
                            if "point_updates_per_s" in dv.get("one_thread", {})
                            else {}
                        ),
                    }
                )
        report["notes"].append(
            "A crackscope node update advances 2 displacement components using 6 bonds (3 families); a Devito point "
            "update advances 5 fields (vx, vy, txx, tyy, txy). Both are float32 and use the same thread count. "
            "Devito's stable dt differs from the lattice's, so equal step counts do not mean equal simulated time."
        )
    report["comparison"] = comparisons

    busy = [
        r
        for r in [*report.get("crackscope", {}).get("runs", []), dv]
        if r.get("other_processes_cpu_fraction", 0.0) > BUSY_WARNING
    ]
    if busy:
        report["notes"].append(
            f"WARNING: other processes used up to {max(r['other_processes_cpu_fraction'] for r in busy):.0%} of the "
            "CPUs during some measurements (see other_processes_cpu_fraction); rerun on an idle machine"
        )

    atomic_write_text(args.out, json.dumps(report, indent=2, default=float) + "\n")
    print(format_table(report))
    print(f"\nresults: {args.out}")
    return 0


def _by_variant(runs: list[dict]) -> list[list[dict]]:
    groups: dict = {}
    for r in runs:
        groups.setdefault(r.get("backend"), []).append(r)
    return list(groups.values())


def format_table(report: dict) -> str:
    hw, sw = report["hardware"], report["software"]
    lines = [
        f"CPU: {hw['cpu_model']} ({hw['cpus_available']} CPUs available), torch {sw['torch']}, "
        f"{sw['torch_num_threads']} torch threads"
    ]
    crack = report.get("crackscope", {})
    if "runs" in crack:
        r0 = crack["runs"][0]
        lines.append(f"crackscope paper preset on {crack['device']}: {r0['n_nodes']} nodes, {r0['n_steps']} steps")
        lines.append("")
        lines.append("| solver | batch | best s | samples/s | node-updates/s |")
        lines.append("|---|---:|---:|---:|---:|")
        for r in crack["runs"]:
            name = "crackscope" + (f" ({r['backend']})" if "backend" in r else "")
            lines.append(
                f"| {name} | {r['batch']} | {r['best_seconds']:.3f} | {r['samples_per_s']:.3f} | "
                f"{r['node_updates_per_s'] / 1e6:.1f} M |"
            )
    else:
        lines.append(f"crackscope: {crack.get('skipped') or crack.get('error')}")
    dv = report.get("devito", {})
    if "point_updates_per_s" in dv:
        if "runs" not in crack:
            lines += ["", "| solver | batch | best s | samples/s | point-updates/s |", "|---|---:|---:|---:|---:|"]
        lines.append(
            f"| Devito {dv['devito_version']} (SO{dv['space_order']}, {dv['grid_shape'][0]}x"
            f"{dv['grid_shape'][1]}) | 1 | {dv['best_seconds']:.3f} | {1 / dv['best_seconds']:.3f} | "
            f"{dv['point_updates_per_s'] / 1e6:.1f} M |"
        )
        one = dv.get("one_thread", {})
        if "point_updates_per_s" in one:
            lines.append(
                f"| Devito, 1 thread (supplementary) | 1 | {one['best_seconds']:.3f} | "
                f"{1 / one['best_seconds']:.3f} | {one['point_updates_per_s'] / 1e6:.1f} M |"
            )
    else:
        lines.append(f"Devito: {dv.get('skipped') or dv.get('error')}")
    for c in report.get("comparison", []):
        extra = ""
        if "ratio_crackscope_over_devito_one_thread" in c:
            extra = f" (vs Devito on 1 thread: {c['ratio_crackscope_over_devito_one_thread']:.2f}x)"
        lines.append(f"crackscope/Devito, {c['label']}: {c['ratio_crackscope_over_devito']:.2f}x{extra}")
    lines += [n for n in report.get("notes", []) if n.startswith("WARNING")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
