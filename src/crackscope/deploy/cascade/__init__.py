"""The tile cascade for large images (AOIE-Net paper, Wu et al. 2025, Figure 1): a binary tile
classifier screens the image and a segmenter runs only on the windows around the flagged tiles.

* :mod:`.models`: the tile classifier and segmenter, loaded from a run or a shipped model folder;
* :mod:`.core`: the cascade on one image (:func:`inspect_image`), its baseline and its result;
* :mod:`.render`: the overlay and the report files' bytes;
* :mod:`.command`: ``crackscope inspect-image`` on an image file or a folder.

Its options are one :class:`~crackscope.deploy.inspect_options.InspectOptions`; images are read and
checked by :mod:`crackscope.data.images`. The names below are those the rest of crackscope, the
tests, the benchmarks and the docs import from here.
"""

from crackscope.data.images import check_image, read_image, to_channels
from crackscope.deploy.cascade.command import LABELLED_CRACKS, inspect_folder, inspect_image_file
from crackscope.deploy.cascade.core import (
    DEFAULT_OVERLAP,
    CascadeResult,
    check_scale,
    inspect_image,
    screened_windows,
    segment_all_tiles,
)
from crackscope.deploy.cascade.models import (
    ENSEMBLE_FILE,
    OPERATING_POINT_FILE,
    ClassifierEnsemble,
    TileClassifier,
    TileSegmenter,
    load_classifier,
    load_segmenter,
    write_ensemble,
)
from crackscope.deploy.cascade.render import overlay_cascade
from crackscope.deploy.inspect_options import DEFAULT_TILE, MAX_SCALE, RUNTIMES, InspectOptions

__all__ = [
    "RUNTIMES",
    "InspectOptions",
    "TileClassifier",
    "ClassifierEnsemble",
    "TileSegmenter",
    "CascadeResult",
    "inspect_image",
    "segment_all_tiles",
    "screened_windows",
    "load_classifier",
    "load_segmenter",
    "write_ensemble",
    "ENSEMBLE_FILE",
    "read_image",
    "to_channels",
    "check_image",
    "overlay_cascade",
    "inspect_image_file",
    "inspect_folder",
    "check_scale",
    "OPERATING_POINT_FILE",
    "DEFAULT_OVERLAP",
    "MAX_SCALE",
    "DEFAULT_TILE",
    "LABELLED_CRACKS",
]
