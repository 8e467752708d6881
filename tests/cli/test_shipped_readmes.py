"""Every shipped model's README (weights/*/*/README.md) names reproduce commands that run today: the
program of each command exists and answers ``--help``, every ``--option`` the command passes is one
that program lists, and a config it names under configs/ or weights/ exists (for ``crackscope train``,
it validates with the command's key=value overrides). Nothing is trained or run here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = sorted(ROOT.glob("src/crackscope/weights/*/*/README.md"))
_HELP: dict[tuple[str, ...], subprocess.CompletedProcess] = {}


def reproduce_commands(text: str) -> list[str]:
    """The commands of a README's reproduce section: the paragraph starting with 'Reproduce' (its
    backtick spans naming ``crackscope`` or a ``benchmarks/*.py`` script) and the indented lines of
    the paragraphs right after it."""
    paragraphs = re.split(r"\n\s*\n", text)
    start = next(i for i, p in enumerate(paragraphs) if p.startswith("Reproduce"))
    commands = []
    first = paragraphs[start].replace("\n", " ")
    for span in re.findall(r"`([^`]+)`", first):
        if span.startswith("crackscope ") or re.search(r"benchmarks/\S+\.py", span):
            commands.append(span)
    commands += [line.strip() for line in paragraphs[start].splitlines()[1:] if line.startswith("    ")]
    for p in paragraphs[start + 1 :]:
        lines = p.splitlines()
        if not all(line.startswith("    ") for line in lines):
            break
        commands += [line.strip() for line in lines]
    return commands


def _help(*program: str) -> subprocess.CompletedProcess:
    if program not in _HELP:
        if program[0] == "crackscope":
            argv = [sys.executable, "-m", "crackscope.cli", *program[1:], "--help"]
        else:
            argv = [sys.executable, str(ROOT / program[0]), "--help"]
        _HELP[program] = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "250", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
        )
    return _HELP[program]


def _program(tokens: list[str]) -> tuple[str, ...]:
    """('crackscope', verb[, sub-verb]) or (the benchmarks/*.py script,)."""
    if tokens[0] == "crackscope":
        return ("crackscope", *tokens[1:3]) if tokens[1] == "simulate" else ("crackscope", tokens[1])
    script = next(t for t in tokens if t.endswith(".py"))
    assert script.startswith("benchmarks/"), f"{script}: not a script in benchmarks/"
    return (script,)


def test_every_shipped_model_has_a_readme_with_a_reproduce_command():
    folders = sorted(p.parent for p in ROOT.glob("src/crackscope/weights/*/*/model.safetensors"))
    assert folders and folders == [r.parent for r in READMES]
    for readme in READMES:
        assert reproduce_commands(readme.read_text()), f"{readme}: no reproduce command"


@pytest.mark.parametrize(
    "readme", READMES, ids=lambda p: p.parent.relative_to(ROOT / "src/crackscope/weights").as_posix()
)
def test_reproduce_commands_name_programs_and_options_that_exist_today(readme):
    from crackscope.engine.config import load_train_config

    for command in reproduce_commands(readme.read_text()):
        tokens = shlex.split(command)
        tokens = tokens[1:] if tokens[0].endswith("python") else tokens
        program = _program(tokens)
        if program[0].endswith(".py"):
            assert (ROOT / program[0]).is_file(), f"{readme}: {program[0]} does not exist"
        done = _help(*program)
        assert done.returncode == 0 and "usage" in done.stdout.lower(), f"{readme}: {command}\n{done.stderr[-2000:]}"
        for option in (t.split("=", 1)[0] for t in tokens if t.startswith("--")):
            assert option in done.stdout, f"{readme}: {' '.join(program)} has no {option} ({command})"
        config = tokens[tokens.index("--config") + 1] if "--config" in tokens else None
        if config and config.startswith(("configs/", "src/crackscope/weights/")):
            assert (ROOT / config).is_file(), f"{readme}: {config} does not exist"
            if program == ("crackscope", "train"):
                overrides = [t for t in tokens[2:] if "=" in t and not t.startswith("-")]
                load_train_config(ROOT / config, overrides)  # an InputError names what does not validate


def test_the_parser_reads_inline_and_indented_commands():
    text = (
        "# M\n\nReproduce: `crackscope train --config a.yaml`, then\n`.venv/bin/python benchmarks/x.py --y 1`"
        " (docs). Chosen with `benchmarks/z.py`.\n\n    crackscope evaluate R --data D --out E\n\nUse: `crackscope "
        "predict M`\n"
    )
    assert reproduce_commands(text) == [
        "crackscope train --config a.yaml",
        ".venv/bin/python benchmarks/x.py --y 1",
        "benchmarks/z.py",
        "crackscope evaluate R --data D --out E",
    ]
    indented = "Reproduce:\n    crackscope simulate wavefield --out s\n    crackscope train --config c\n\nFresh: x\n"
    assert reproduce_commands(indented) == ["crackscope simulate wavefield --out s", "crackscope train --config c"]
