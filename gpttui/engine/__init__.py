"""The worker side of gpttui: model, data, trainer, checkpoints (these import torch).

This package's __init__ imports nothing, so `gpttui.engine.prepare` and
`gpttui.engine.tokenizer` stay usable without paying for torch.
"""
