"""The bad-input contract for script entry points: one line, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from crackscope.errors import InputError, exit_code_of, named_values


def test_exit_code_of_turns_bad_input_into_one_line_and_code_2(capsys):
    def bad(argv):
        raise InputError(f"--side {argv[0]} must be a multiple of 128")

    assert exit_code_of(bad, ["100"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --side 100 must be a multiple of 128\n"
    assert exit_code_of(lambda argv: 0, []) == 0
    with pytest.raises(ZeroDivisionError):  # other failures are not bad input: they stay loud
        exit_code_of(lambda argv: 1 / 0)


def test_named_values_split_at_the_first_equals_sign_and_name_a_bad_one():
    assert named_values(["a=runs/x=1", "shipped=cracks/segmenter"], "--model") == {
        "a": "runs/x=1",
        "shipped": "cracks/segmenter",
    }
    for bad in ("noequals", "=path", "name="):
        with pytest.raises(InputError, match=f"--model '{bad}' is not NAME=VALUE"):
            named_values([bad], "--model")
