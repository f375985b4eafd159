"""A dmesg-like ring of what drivers say, with kernel-style timestamps and prefixes."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    usec: int       # since boot
    level: int
    text: str

    def format(self) -> str:
        return f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}] {self.text}"


class KernelLog:
    def __init__(self, size: int = 65536):
        self.lines: deque[LogLine] = deque(maxlen=size)
        self.boot = time.monotonic()
        self.seq = 0

    def emit(self, level: str, text: str) -> LogLine:
        self.seq += 1
        line = LogLine(self.seq, int((time.monotonic() - self.boot) * 1e6), LEVELS[level], text)
        self.lines.append(line)
        return line

    def since(self, seq: int = 0) -> list[LogLine]:
        return [line for line in self.lines if line.seq > seq]

    def text(self) -> str:
        return "".join(line.format() + "\n" for line in self.lines)

    def grep(self, needle: str) -> list[str]:
        return [line.text for line in self.lines if needle in line.text]
