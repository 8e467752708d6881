"""The on-disk layouts each dataset reader accepts, named once (light to import: the CLI, the
configs and the pipeline registry read these names without loading the readers)."""

from __future__ import annotations

# crackscope.data.surface: image / mask pairs
SURFACE_FORMATS = ("sd-saliency-900", "folder", "deepcrack", "crack500", "crackpatches")
# the crack layouts among them: their runs are also scored with the crack literature's ODS / OIS
CRACK_SURFACE_FORMATS = ("deepcrack", "crack500", "crackpatches")
# crackscope.data.classification: one label per image ("auto" detects the layout)
IMAGE_CLASSIFICATION_FORMATS = ("auto", "neu-cls", "folder", "cifar10")
# crackscope.data.tiles: crack / no-crack tiles cut from DeepCrack image / mask pairs
TILE_FORMAT = "deepcrack-tiles"
CLASSIFY_FORMATS = (*IMAGE_CLASSIFICATION_FORMATS, TILE_FORMAT)
