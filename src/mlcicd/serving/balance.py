"""Spread keep-alive connections over the workers: the least busy one accepts first.

With one shared listening socket every idle worker wakes for a new connection and the
first to call ``accept`` wins. Keep-alive clients (nginx's upstream pool, a load balancer,
a benchmark) open a handful of long-lived connections, so splits like 6/2 over two
workers are common (measured: 1/7 to 4/4 for 8 connections), and the clients of the
busier worker wait longer for every answer.

So each worker publishes how many connections it holds in a small table of counters
shared through a memory-mapped file, one slot per worker. A worker that holds more than
the least busy one waits a moment before it accepts, which lets the least busy worker take
the connection. If that worker is itself busy and does not take it in time, the waiting
worker accepts after all: a connection is delayed by at most :data:`DEFER` seconds, never
refused. Counts are read without locks; a stale value only makes one decision less even.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

SLOT_BYTES = 8
# Long enough for an idle worker's accept loop to wake and take the connection, short
# next to a model's answer.
DEFER = 0.003


class Balance:
    def __init__(self, path: Path, slot: int) -> None:
        size = path.stat().st_size
        self.slots = size // SLOT_BYTES
        if not 0 <= slot < self.slots:
            raise ValueError(f"worker slot {slot} outside the {self.slots} slots of {path}")
        fd = os.open(path, os.O_RDWR)
        try:
            self.table = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.slot = slot

    @staticmethod
    def create(path: Path, slots: int) -> None:
        path.write_bytes(b"\0" * SLOT_BYTES * slots)

    def publish(self, connections: int) -> None:
        struct.pack_into("q", self.table, self.slot * SLOT_BYTES, connections)

    def counts(self) -> list[int]:
        return list(struct.unpack_from(f"{self.slots}q", self.table, 0))

    def busier_than_least(self, connections: int) -> bool:
        return connections > min(self.counts())
