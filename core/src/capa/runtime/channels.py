"""The channel registry: latest value per channel, and bounded subscriptions.

Workers update it from their own threads; procedures and ``wait`` steps read it from the
run's main loop. A subscription never blocks a producer: when its buffer is full the
oldest value is dropped and counted (a slow procedure must not stall sampling).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable

__all__ = ["ChannelRegistry", "Subscription"]


class Subscription:
    """Values of some channels as they arrive, buffered up to ``maxlen``."""

    def __init__(self, channels: Iterable[str], maxlen: int, loop: asyncio.AbstractEventLoop):
        self.channels = frozenset(channels)
        self._buffer: deque[tuple[str, int, float]] = deque(maxlen=maxlen)
        self._loop = loop
        self._ready = asyncio.Event()
        self.dropped = 0

    def _push(self, channel: str, t_mono_ns: int, value: float) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append((channel, t_mono_ns, value))
        # Wake the consumer on its own loop; Event is not thread-safe.
        self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> tuple[str, int, float]:
        """The next ``(channel, t_mono_ns, value)``, waiting if none is buffered."""
        while not self._buffer:
            self._ready.clear()
            if self._buffer:
                break
            await self._ready.wait()
        return self._buffer.popleft()

    def drain(self) -> list[tuple[str, int, float]]:
        """Everything buffered now, oldest first, without waiting."""
        items = list(self._buffer)
        self._buffer.clear()
        return items


class ChannelRegistry:
    """Latest calibrated value of every channel, safe to update from any thread."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = list(names)
        self._latest: dict[str, tuple[int, float]] = {}
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every channel of the run."""
        return list(self._names)

    def latest(self, channel: str) -> float | None:
        """Most recent value, or ``None`` before the first sample."""
        entry = self._latest.get(channel)
        return entry[1] if entry is not None else None

    def latest_with_time(self, channel: str) -> tuple[int, float] | None:
        """``(t_mono_ns, value)`` of the most recent sample, or ``None``."""
        return self._latest.get(channel)

    def snapshot(self) -> dict[str, float]:
        """Latest value of every channel that has one."""
        with self._lock:
            return {name: v for name, (_t, v) in self._latest.items()}

    def update(self, channel: str, t_mono_ns: int, value: float) -> None:
        """Record the newest sample of ``channel`` (one per batch, not per sample)."""
        with self._lock:
            self._latest[channel] = (t_mono_ns, value)
            subs = [s for s in self._subs if channel in s.channels]
        for sub in subs:
            sub._push(channel, t_mono_ns, value)

    def subscribe(self, channels: Iterable[str], maxlen: int = 1024) -> Subscription:
        """Follow ``channels`` from the calling event loop."""
        sub = Subscription(channels, maxlen, asyncio.get_running_loop())
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
