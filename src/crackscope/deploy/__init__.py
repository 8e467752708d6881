"""Deployment of trained runs: export to ONNX or the bit-packed format (:mod:`.export`), bit-packed
binary inference (:mod:`.packed`), the tile cascade (:mod:`.cascade`) and its operating point
(:mod:`.operating_point`), and shipped model folders (:mod:`.package`). Deployment reads runs
through :mod:`crackscope.engine.runs`; the engine never imports this package."""
