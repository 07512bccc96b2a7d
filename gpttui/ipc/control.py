"""Moved: the control socket's server to gpttui.ipc.server, its client to gpttui.ipc.client."""

from gpttui.ipc.client import NotRunning, SocketClient  # moved to gpttui.ipc.client; re-exported until the UI rework lands

__all__ = ["NotRunning", "SocketClient"]
