"""Copy a child's console output, line by line, to our console and one log file."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import IO

TAIL_LINES = 20


class LogTee:
    """Reads the child's output pipe (stdout and stderr share it, so ``std_log.txt`` keeps the
    order the program wrote them in), writes every line to the log file and, when ``echo``, to
    ``console``; keeps the last lines for error messages."""

    def __init__(self, log_path: Path, echo: bool) -> None:
        self.log_path = log_path
        self.echo = echo
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self._threads: list[threading.Thread] = []

    def follow(self, stream: IO[bytes], console: IO[str]) -> None:
        thread = threading.Thread(target=self._pump, args=(stream, console), daemon=True,
                                  name=f"mlflow-ws-tee-{self.log_path.parent.name[-8:]}")
        thread.start()
        self._threads.append(thread)

    def _pump(self, stream: IO[bytes], console: IO[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._lock:
                self._log.write(line)
                self._log.flush()
                if line.strip():
                    self.tail.append(line.rstrip("\n"))
            if self.echo:
                try:
                    console.write(line)
                    console.flush()
                except (OSError, ValueError):  # console closed (e.g. at interpreter exit)
                    self.echo = False
        stream.close()

    def close(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            self._log.close()

    def tail_text(self) -> str:
        with self._lock:
            return "\n".join(self.tail)
