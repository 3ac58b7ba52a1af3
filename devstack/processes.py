"""Child processes for ``takt demo``: started together, logged with a prefix, stopped together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

logger = logging.getLogger(__name__)


@dataclass
class ChildProcess:
    name: str
    args: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, out: IO[str]) -> None:
        self.process = subprocess.Popen(
            list(self.args),
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to us; we stop children in order
        )
        threading.Thread(target=self._pump, args=(out,), name=f"log-{self.name}", daemon=True).start()

    def _pump(self, out: IO[str]) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            out.write(f"[{self.name}] {raw.decode(errors='replace')}")
            out.flush()

    def stop(self, timeout_s: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
            self.process.kill()
            self.process.wait()


class ProcessGroup:
    """Start in order, stop in reverse order; report a child that dies early."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.children: list[ChildProcess] = []
        self.out = out

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> ChildProcess:
        child = ChildProcess(name, args, dict(env or {}))
        child.start(self.out)
        self.children.append(child)
        return child

    def failed(self) -> list[str]:
        """Names of children that exited with an error."""
        return [c.name for c in self.children if c.process is not None and c.process.poll() not in (None, 0)]

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
