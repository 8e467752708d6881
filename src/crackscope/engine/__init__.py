"""The training and evaluation engine shared by every pipeline (Lightning underneath)."""
