"""crackscope: deep-learning detection of defects and micro-cracks."""

__version__ = "0.1.0"
