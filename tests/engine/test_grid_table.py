"""The grid's model table: variants of one model (options other than the activation) get rows of
their own, and seeds of one variant are averaged with their sample standard deviation."""

from crackscope.engine.wavefield import SIZE_COLUMNS, model_table


def _row(variant, seed, dsc):
    return {
        "model": "micro_crack_attention_next",
        "variant": variant,
        "loss": "CWDL",
        "seed": seed,
        "accuracy": 0.99,
        "parameters": 1000,
        "train_samples_per_s": None,
        **{f"dsc{c}": dsc for c in SIZE_COLUMNS},
    }


def test_variants_are_rows_and_seeds_are_averaged():
    table = model_table(
        [_row("", 0, 0.5), _row("upsample=bilinear", 0, 0.8), _row("upsample=bilinear", 1, 0.9)]
    ).splitlines()
    paper = [line for line in table if line.startswith("| micro_crack_attention_next | CWDL |")]
    variant = [line for line in table if line.startswith("| micro_crack_attention_next (upsample=bilinear) | CWDL |")]
    assert len(paper) == len(variant) == 1
    assert "| 0.5000 |" in paper[0]
    # mean 0.85, sample standard deviation sqrt(((0.05)^2 * 2) / 1) = 0.0707
    assert "| 0.8500 ± 0.0707 |" in variant[0]


def test_learning_curve_rows_by_training_plates():
    from crackscope.engine.wavefield import plates_table

    rows = [
        {**_row("", 0, 0.6), "train_plates": 3000},
        {**_row("", 0, 0.4), "train_plates": 1000},
        {**_row("", 1, 0.5), "train_plates": 1000},
    ]
    table = plates_table(rows).splitlines()
    assert table[2].startswith("| 1,000 | 0.4500 ± 0.0707 |")  # fewer plates first, seeds averaged
    assert table[3].startswith("| 3,000 | 0.6000 |")


def test_data_rows_by_record_length_and_training_data():
    from crackscope.engine.wavefield import data_table

    common = {"epochs_run": 4, "fit_seconds": 600.0}
    rows = [
        {**_row("", 0, 0.8), **common, "n_time": 250, "stream_plates": None, "train_plates": 2000},
        {**_row("", 0, 0.9), **common, "n_time": 250, "stream_plates": 1500, "train_plates": None},
        {
            **_row("", 0, 0.7),
            **common,
            "n_time": 1000,
            "stream_plates": 300,
            "train_plates": None,
            "fit_seconds": 720.0,
        },
    ]
    table = data_table(rows).splitlines()
    # a store's 2,000 plates four times: 8,000 seen, 2,000 of them different; 600 s = 10.0 min
    assert table[2].startswith("| 250 | 2,000 plates of a store | 8,000 (2,000) | 10.0 | 0.8000 |")
    # streamed: every plate seen once
    assert table[3].startswith("| 250 | 1,500 fresh plates per epoch | 6,000 (6,000) | 10.0 | 0.9000 |")
    assert table[4].startswith("| 1000 | 300 fresh plates per epoch | 1,200 (1,200) | 12.0 | 0.7000 |")


def test_grid_set_is_shared_and_a_label_names_a_run(tmp_path):
    import yaml

    from crackscope.engine.grid import expand

    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "name": "b",
                "data": {"store": "plates.zarr"},
                "model": {"name": "simple_cnn"},
                "loss": {"name": "dice"},
                "trainer": {"max_epochs": 8},
            }
        )
    )
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "base": "base.yaml",
                "seeds": [0, 1],
                "set": {"trainer.max_epochs": 3, "data.split": [0.5, 0.25, 0.25]},
                "runs": [
                    {"label": "fresh", "data.stream_plates": 10},
                    {"data.train_plates": 5, "trainer.max_epochs": 5},
                ],
            }
        )
    )
    _, configs = expand(grid)
    by_name = {c.name: c for c in configs}
    assert set(by_name) == {"g-fresh-s0", "g-5-5-s0", "g-fresh-s1", "g-5-5-s1"}
    for seed in (0, 1):
        fresh, capped = by_name[f"g-fresh-s{seed}"], by_name[f"g-5-5-s{seed}"]
        assert fresh.data.split == capped.data.split == (0.5, 0.25, 0.25)
        assert (fresh.data.stream_plates, fresh.trainer.max_epochs) == (10, 3)  # the shared setting
        assert (capped.data.train_plates, capped.trainer.max_epochs) == (5, 5)  # a run's own wins


def test_a_run_restored_from_its_metrics_alone_keeps_its_training_plates(tmp_path):
    # a fresh clone restores only RUN/metrics.json: the store run's plates come from its metrics,
    # since split.json and data.train_plates are both absent
    from crackscope.engine.config import load_train_config
    from crackscope.engine.wavefield import data_table, wavefield_grid_row

    cfg = load_train_config(
        None,
        base={
            "name": "store-run",
            "out_dir": str(tmp_path),
            "data": {"store": "plates.zarr"},
            "model": {"name": "simple_cnn"},
            "loss": {"name": "dice"},
        },
    )
    metrics = {
        "dsc": 0.8,
        "accuracy": 0.99,
        "iou": 0.7,
        "epochs_run": 4,
        "fit_seconds": 120.0,
        "n_time": 250,
        "dataset": {"train": 2000, "val": 1000, "test": 1000},
        "by_crack_size": {c: {"dsc": 0.8} for c in SIZE_COLUMNS},
    }
    row = wavefield_grid_row(cfg, metrics)
    assert (row["train_plates"], row["stream_plates"]) == (2000, None)
    assert data_table([row]).splitlines()[2].startswith("| 250 | 2,000 plates of a store | 8,000 (2,000) | 2.0 |")
