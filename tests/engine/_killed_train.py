"""The fault the resume tests recover from: a training run SIGKILLed right after an epoch's checkpoints.

    python tests/engine/_killed_train.py CONFIG EPOCHS [key=value ...]

trains CONFIG as ``crackscope train --config CONFIG [key=value ...]`` does, with one more callback,
:class:`KillAfterEpoch`, passed to :func:`crackscope.engine.train.train`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint


class KillAfterEpoch(Checkpoint):
    """SIGKILLs the process once ``epochs`` epochs are trained and checkpointed.

    A ``Checkpoint``: Lightning runs checkpoint callbacks after all others, in list order, and train()
    puts the callbacks it is given after its own, so the epoch's ``last.ckpt`` is written when this
    runs; that is checked before the kill (a kill before the write would test another fault).
    """

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 < self.epochs:
            return
        writers = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.save_last]
        assert writers, "KillAfterEpoch: the run has no last.ckpt writer"
        for cb in writers:
            saved = torch.load(cb.last_model_path, map_location="cpu", weights_only=True)["epoch"]
            assert saved == trainer.current_epoch, (
                f"KillAfterEpoch: {cb.last_model_path} holds epoch {saved}, "
                f"not epoch {trainer.current_epoch}: it would kill before the checkpoint"
            )
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    from crackscope.engine.config import load_train_config
    from crackscope.engine.train import train

    config, epochs, *overrides = argv
    train(load_train_config(Path(config), overrides), callbacks=[KillAfterEpoch(int(epochs))])
    return 0  # not reached when the run has that many epochs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
