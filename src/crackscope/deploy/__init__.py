"""Deployment of trained runs: export to ONNX or the bit-packed format (:mod:`.export`), bit-packed
binary inference (:mod:`.packed`) and the tile cascade (:mod:`.cascade`). Deployment reads runs
through :mod:`crackscope.engine.runs`; the engine never imports this package."""
