"""Deployment: bit-packed binary inference (:mod:`.packed`) and the tile cascade (:mod:`.cascade`)."""
