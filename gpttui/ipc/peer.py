"""The UI's handle on a process that speaks the protocol, whichever way it is reached.

`ProtocolProcess` (process.py) is a child the UI started, on pipes; `SocketClient` (client.py)
is an engine reached through its control socket. The dashboard and the sampling pane drive both
through this one interface, so a spawned engine and an attached one look alike to them.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from typing import Any

from gpttui.ipc.inbox import Drained, Inbox


class Peer(ABC):
    """Events and log lines in (through `inbox`, filled by reader threads), commands out."""

    pid: int

    def __init__(self) -> None:
        self.inbox = Inbox()

    def drain(self) -> Drained:
        """Everything that arrived since the last call (cheap when nothing did)."""
        return self.inbox.drain()

    def stderr_tail(self, n: int = 40) -> list[str]:
        return self.inbox.tail(n)

    @abstractmethod
    def send(self, cmd: str, **values: Any) -> bool:
        """Write one command line; False if the other end is gone."""

    @property
    @abstractmethod
    def returncode(self) -> int | None:
        """None while the process runs."""

    @property
    @abstractmethod
    def alive(self) -> bool: ...

    @property
    @abstractmethod
    def finished_reading(self) -> bool:
        """The process ended and every line it sent has reached the inbox."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""

    @abstractmethod
    def signal(self, sig: int = signal.SIGTERM) -> None: ...

    @abstractmethod
    def close_stdin(self) -> None:
        """Say no more commands will come (an engine then trains on detached)."""

    def terminate(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.signal(signal.SIGKILL)
            code = self.wait(5.0)
        return code
