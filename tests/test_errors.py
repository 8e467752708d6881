"""The bad-input contract for script entry points: one line, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from crackscope.errors import InputError, exit_code_of


def test_exit_code_of_turns_bad_input_into_one_line_and_code_2(capsys):
    def bad(argv):
        raise InputError(f"--side {argv[0]} must be a multiple of 128")

    assert exit_code_of(bad, ["100"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --side 100 must be a multiple of 128\n"
    assert exit_code_of(lambda argv: 0, []) == 0
    with pytest.raises(ZeroDivisionError):  # other failures are not bad input: they stay loud
        exit_code_of(lambda argv: 1 / 0)
