"""A fake CUDA card for tests: put this folder on PYTHONPATH and every Python process started
with it (the engine, the sampler, a GPU probe) finds `torch.cuda` answering as one real card
would, up to the first call that needs the card itself (a tensor on it), which fails as torch
without CUDA does: "Torch not compiled with CUDA enabled".

FAKE_CUDA: "NAME|MAJOR.MINOR|TOTAL_GIB|FREE_GIB" (default one RTX 4070, 12 GiB, 11 free).
FAKE_CUDA_LOG: a file that gets one line per call made (set_device 0, mem_get_info 0, ...).
Product code has no hook for this: it patches torch after torch imports itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from typing import Any

NAME, CC, TOTAL, FREE = (os.environ.get("FAKE_CUDA") or "NVIDIA GeForce RTX 4070|8.9|12|11").split("|")
MAJOR, MINOR = (int(x) for x in CC.split("."))
GIB = 1 << 30


def _log(line: str) -> None:
    path = os.environ.get("FAKE_CUDA_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {line}\n")


def patch(torch: Any) -> None:
    cuda = torch.cuda
    get_index = cuda._utils._get_device_index  # torch's own argument checks
    current = [0]

    def index(device: Any = None) -> int:
        i = current[0] if device is None else get_index(device, optional=True)
        if not 0 <= i < 1:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return i

    def set_device(device: Any) -> None:
        i = get_index(device)  # raises for 'cuda' without an index, as torch does
        _log(f"set_device {i}")
        if i >= 0:
            current[0] = index(i)

    def mem_get_info(device: Any = None) -> tuple[int, int]:
        i = index(device)
        _log(f"mem_get_info {i}")
        return int(float(FREE) * GIB), int(float(TOTAL) * GIB)

    cuda.is_available = lambda: True
    cuda.device_count = lambda: 1
    cuda.current_device = lambda: current[0]
    cuda.set_device = set_device
    cuda.get_device_name = lambda device=None: (index(device), NAME)[1]
    cuda.get_device_capability = lambda device=None: (index(device), (MAJOR, MINOR))[1]
    cuda.is_bf16_supported = lambda including_emulation=True: True  # as torch says, even below 8.0
    cuda.mem_get_info = mem_get_info
    _log("patched")


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _PatchAfterImport())
