"""lib/idr.c's IDA: hands out the lowest free id, so freed ids come back."""
from __future__ import annotations


class IDA:
    def __init__(self, start: int = 0):
        self.start = start
        self.used: set[int] = set()

    def alloc(self) -> int:
        i = self.start
        while i in self.used:
            i += 1
        self.used.add(i)
        return i

    def free(self, i: int) -> None:
        self.used.discard(i)
