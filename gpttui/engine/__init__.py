"""The worker side of gpttui: model, data, trainer, checkpoints (these import torch).

This package's __init__ imports nothing, so `gpttui.data.prepare` and
`gpttui.data.tokenizer` stay usable without paying for torch.
"""
