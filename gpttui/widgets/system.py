"""CPU and RAM (psutil) and GPU utilisation and memory (nvidia-ml-py), each "n/a" when absent;
a training device's total memory, for the config editor's fit check; and `Machine`, what the
dashboard reads from the machine it runs on rather than from the run (the clock, these figures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from textual.dom import DOMNode
from textual.widgets import Static


@dataclass
class Figures:
    cpu: str = "n/a"
    ram: str = "n/a"
    gpu: str = "n/a"
    vram: str = "n/a"


class Probe:
    """Reads the figures; every source is optional and a failing one reads "n/a"."""

    def __init__(self) -> None:
        try:
            import psutil

            self._psutil = psutil
            psutil.cpu_percent(None)  # primes the counter: the next call measures since now
        except Exception:
            self._psutil = None
        self._nvml = None
        self._gpus: list = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._gpus = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._nvml = pynvml
        except Exception:
            self._nvml = None

    def read(self) -> Figures:
        f = Figures()
        if self._psutil is not None:
            try:
                f.cpu = f"{self._psutil.cpu_percent(None):.0f}%"
                vm = self._psutil.virtual_memory()
                f.ram = f"{vm.used / 2**30:.1f}/{vm.total / 2**30:.0f}G"
            except Exception:
                pass
        if self._nvml is not None and self._gpus:
            try:
                utils, used, total = [], 0, 0
                for h in self._gpus:
                    utils.append(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                    mem = self._nvml.nvmlDeviceGetMemoryInfo(h)
                    used, total = used + mem.used, total + mem.total
                f.gpu = " ".join(f"{u}%" for u in utils)
                f.vram = f"{used / 2**30:.1f}/{total / 2**30:.0f}G"
            except Exception:
                pass
        return f


class FigureSource(Protocol):
    def read(self) -> Figures: ...


@dataclass(frozen=True)
class Machine:
    """What the dashboard reads from the machine it runs on, not from the run: the wall clock
    (a running run's elapsed time ticks with it) and where the system figures come from (made
    when they are first shown). The app holds one as its `machine`; a picture of the dashboard
    is taken with fixed ones."""

    clock: Callable[[], float] = time.time
    figures: Callable[[], FigureSource] = Probe


THIS_MACHINE = Machine()


def machine_of(node: DOMNode) -> Machine:
    """The `machine` of the app `node` is shown in (this machine for an app that has none)."""
    machine = getattr(node.app, "machine", None)
    return machine if isinstance(machine, Machine) else THIS_MACHINE


def device_memory(device: str) -> int | None:
    """Memory of the training device in bytes: RAM for 'cpu', the GPU's for 'cuda[:N]' when
    nvidia-ml-py is installed; None when unknown."""
    try:
        if device == "cpu":
            import psutil

            return int(psutil.virtual_memory().total)
        if device.startswith("cuda"):
            import pynvml

            pynvml.nvmlInit()
            index = int(device.partition(":")[2] or 0)
            return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).total)
    except Exception:  # no psutil, no NVML, no such GPU: the figure is simply unknown
        return None
    return None


class SystemFigures(Static):
    """The figures, read every SAMPLE_S seconds from the app's machine."""

    SAMPLE_S = 2.0

    def on_mount(self) -> None:
        self.probe = machine_of(self).figures()
        self._shown: Figures | None = None
        self.sample()
        self.set_interval(self.SAMPLE_S, self.sample)

    def sample(self) -> None:
        f = self.probe.read()
        if f != self._shown:   # (unchanged figures: nothing to redraw)
            self._shown = f
            self.update(f"[dim]CPU[/] {f.cpu}  [dim]RAM[/] {f.ram}\n[dim]GPU[/] {f.gpu}  [dim]VRAM[/] {f.vram}",
                        layout=False)
