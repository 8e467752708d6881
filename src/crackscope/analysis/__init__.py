"""Analysis of simulated data: store summaries and report figures."""

from crackscope.analysis.inspect import (
    LARGEST_CRACK_THRESHOLDS_UM,
    LENGTH_BIN_EDGES_UM,
    cracks_from_store,
    format_summary,
    inspect_store,
    resimulate_sample,
    summarize_cracks,
)

__all__ = [
    "LENGTH_BIN_EDGES_UM",
    "LARGEST_CRACK_THRESHOLDS_UM",
    "cracks_from_store",
    "format_summary",
    "inspect_store",
    "resimulate_sample",
    "summarize_cracks",
]
