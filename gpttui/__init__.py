"""gpttui: train small GPT models from a terminal dashboard."""

__version__ = "0.1.0"
