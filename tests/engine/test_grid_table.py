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
