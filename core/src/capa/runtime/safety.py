"""The run's safety monitor: alarms, device watchdogs and command interlocks.

It runs beside the procedure, not inside it: samples reach it from the channel pipeline on
the workers' threads (before they are queued for the writer, so a saturated writer does
not blind it), transitions are handed to one task on the conductor's loop, and that task
acts at once — it writes the rig's safe targets and stops the run — before it records
anything. Event writes go through a worker thread, because the writer's queue blocks when
the disk is behind and the monitor must never wait for the disk to react.

Actions:

- ``warn``: an ``alarm.raised`` event (and ``alarm.cleared`` later);
- ``abort``: the event, and the run stops (``aborted``, exit 1) with the alarm in
  ``exit_reason``;
- ``safe_shutdown``: the safe targets (from the method's safe-shutdown step, see
  :meth:`capa.Step.safe_targets`) are written first, then the run stops as for ``abort``;
  the procedure's own shutdown (the recipe runner's ``safe_shutdown_on_abort``) follows,
  and every device is closed into its documented safe state when the run ends.

Device watchdogs trip when a device with ``watchdog_s`` produced no sample for that long;
its ``on_failure`` policy (``warn`` / ``abort`` / ``safe_shutdown``) applies.

Interlocks are checked by :meth:`SafetyMonitor.check_command` for every command the run
dispatches — method steps, procedures and manual commands all pass there.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from capa.runtime.alarms import AlarmState, AlarmTransition, InterlockState

if TYPE_CHECKING:
    from capa.clock import RunClock
    from capa.components.adapter import Command, CommandResult
    from capa.config.safety import AlarmConfig, InterlockConfig
    from capa.runtime.plan import ChannelPlan, DevicePlan

__all__ = ["InterlockGate", "SafetyMonitor", "WatchdogTrip", "safe_targets_of"]

CHECK_INTERVAL_S = 0.05
"""How often staleness and watchdogs are checked (bounds their reaction time)."""
ACT_BOUND_S = 10.0
"""Longest one action (safe-target writes and its event) may take once started."""

Emit = Callable[..., None]
WriteChannel = Callable[..., Awaitable["CommandResult"]]


@dataclass(frozen=True, slots=True)
class WatchdogTrip:
    """A device that stopped producing samples."""

    device: str
    silent_s: float
    limit_s: float
    policy: str
    t_mono_ns: int


@dataclass(frozen=True, slots=True)
class _SafeShutdownRequest:
    """A device failure whose policy is ``safe_shutdown`` (the conductor stops the run)."""

    why: str
    reason: str
    t_mono_ns: int


@dataclass
class _Counters:
    raised: dict[str, int] = field(default_factory=dict)
    watchdog_trips: dict[str, int] = field(default_factory=dict)
    interlock_refusals: int = 0
    reaction_ms: list[float] = field(default_factory=list)


def safe_targets_of(steps: Sequence[Any]) -> dict[str, float]:
    """The safe targets the method's steps declare (later steps win for a channel)."""
    targets: dict[str, float] = {}
    for step in steps:
        fn = getattr(step, "safe_targets", None)
        if fn is not None:
            targets.update(fn())
    return targets


class SafetyMonitor:
    """Alarms, watchdogs and interlocks of one run.

    Args:
        alarms: every alarm (rig's and experiment's).
        interlocks: every interlock.
        channels: the run's channels (to map a device write to its channel and value).
        devices: the run's devices (watchdog limits and failure policies).
        safe_targets: channel -> safe value, written on a safe-shutdown action.
        clock: the run clock.
        emit: the session's event writer (called on a worker thread).
        stop: the conductor's ``stop(reason)``.
        write_channel: the run context's ``write_channel`` (calibrated, goes through
            :meth:`check_command` like every command).
    """

    def __init__(
        self,
        *,
        alarms: Sequence[AlarmConfig],
        interlocks: Sequence[InterlockConfig],
        channels: Sequence[ChannelPlan],
        devices: Sequence[DevicePlan],
        safe_targets: Mapping[str, float],
        clock: RunClock,
        emit: Emit,
        stop: Callable[[str], None],
        write_channel: WriteChannel,
    ) -> None:
        self._alarms: dict[str, list[AlarmState]] = {}
        for config in alarms:
            self._alarms.setdefault(config.channel, []).append(AlarmState(config))
        self._interlocks = interlocks
        self._gate = InterlockGate(interlocks, channels)
        self._watchdogs = {d.name: d for d in devices if getattr(d, "watchdog_s", None)}
        self._safe_policy = any(d.on_failure == "safe_shutdown" for d in devices)
        self._last_seen: dict[str, int] = {}
        self._tripped: set[str] = set()
        self._safe_targets = dict(safe_targets)
        self._clock = clock
        self._emit = emit
        self._stop = stop
        self._write_channel = write_channel
        self._lock = threading.Lock()  # alarm states are fed from several worker threads
        self._pending: deque[AlarmTransition | WatchdogTrip | _SafeShutdownRequest] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._safe_done = False
        self.counters = _Counters()

    @property
    def active(self) -> bool:
        """Whether there is anything to monitor (the conductor skips an idle monitor)."""
        return bool(self._alarms or self._interlocks or self._watchdogs or self._safe_policy)

    def watches(self, channel: str) -> bool:
        """Whether any alarm watches ``channel`` (the pipeline skips other channels)."""
        return channel in self._alarms

    # ------------------------------------------------------------------ worker threads
    def observe(self, channel: str, t_ns: Any, values: Any) -> None:
        """Every sample of a watched channel, from the pipeline (any thread)."""
        states = self._alarms.get(channel)
        if not states:
            return
        with self._lock:
            found = [x for s in states for x in s.update(t_ns, values)]
        if found:
            self._hand_over(found)

    def device_alive(self, device: str, t_ns: int) -> None:
        """A device produced samples (feeds its watchdog; any thread)."""
        if device in self._watchdogs:
            self._last_seen[device] = t_ns  # one dict store: atomic under the GIL

    def request_safe_shutdown(self, why: str, reason: str) -> None:
        """Write the safe targets for a failure whose policy is ``safe_shutdown`` (any thread).

        The caller stops the run itself; this only makes the rig safe first.
        """
        self._hand_over([_SafeShutdownRequest(why, reason, self._clock.now_ns())])

    def _hand_over(
        self, items: Sequence[AlarmTransition | WatchdogTrip | _SafeShutdownRequest]
    ) -> None:
        self._pending.extend(items)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the run's loop is closing: nothing left to protect
                return

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Act on transitions as they come; check staleness and watchdogs.

        Runs until cancelled (the conductor cancels it when the run drains).
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        now = self._clock.now_ns()
        with self._lock:
            for states in self._alarms.values():
                for state in states:
                    state.arm(now)
        for device in self._watchdogs:
            self._last_seen.setdefault(device, now)
        while True:
            # Woken by a transition, or every CHECK_INTERVAL_S for the timers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_INTERVAL_S)
            self._wake.clear()
            self._check_timers()
            while self._pending:
                item = self._pending.popleft()
                # Shielded: stopping the run cancels this task soon after an abort, and
                # the action's record must still be written. Bounded, so a writer stuck
                # on a full disk cannot hold the run's drain.
                with anyio.move_on_after(ACT_BOUND_S, shield=True):
                    await self._act(item)

    def _check_timers(self) -> None:
        now = self._clock.now_ns()
        found: list[AlarmTransition | WatchdogTrip | _SafeShutdownRequest] = []
        with self._lock:
            for states in self._alarms.values():
                for state in states:
                    found.extend(state.check_stale(now))
        for name, device in self._watchdogs.items():
            limit = float(device.watchdog_s or 0.0)
            silent = (now - self._last_seen.get(name, now)) / 1e9
            if silent > limit and name not in self._tripped:
                self._tripped.add(name)
                found.append(WatchdogTrip(name, silent, limit, device.on_failure, now))
            elif silent <= limit:
                self._tripped.discard(name)
        self._pending.extend(found)

    async def _act(self, item: AlarmTransition | WatchdogTrip | _SafeShutdownRequest) -> None:
        if isinstance(item, WatchdogTrip):
            await self._watchdog(item)
            return
        if isinstance(item, _SafeShutdownRequest):
            meta = await self._shutdown("safe_shutdown", item.why, item.t_mono_ns)
            await self._record(
                "safety.safe_shutdown",
                f"{item.why} failed (on_failure safe_shutdown): {item.reason}",
                "error",
                {"cause": item.why, "reason": item.reason, **meta},
            )
            return
        config = next(s.config for s in self._alarms[item.channel] if s.config.name == item.alarm)
        if not item.raised:
            await self._record(
                "alarm.cleared",
                f"alarm {item.alarm} cleared: {item.channel} = {item.value:g}",
                "info",
                item.metadata(),
            )
            return
        self.counters.raised[item.alarm] = self.counters.raised.get(item.alarm, 0) + 1
        meta = {**item.metadata(), "action": config.action, "severity": config.severity}
        message = f"alarm {item.alarm}: {_describe(item)}"
        if config.action != "warn":
            reaction = await self._shutdown(config.action, f"alarm {item.alarm}", item.t_mono_ns)
            meta.update(reaction)
            self._stop(f"alarm: {item.alarm}: {_describe(item)} (action {config.action})")
        # events.sqlite knows info / warning / error (seed 003): a critical alarm is an
        # error event, its own severity stays in the metadata.
        severity = "warning" if config.severity == "warning" else "error"
        await self._record("alarm.raised", message, severity, meta)

    async def _watchdog(self, trip: WatchdogTrip) -> None:
        self.counters.watchdog_trips[trip.device] = (
            self.counters.watchdog_trips.get(trip.device, 0) + 1
        )
        meta: dict[str, Any] = {
            "device": trip.device,
            "silent_s": round(trip.silent_s, 3),
            "limit_s": trip.limit_s,
            "policy": trip.policy,
        }
        message = (
            f"watchdog: device {trip.device} produced no sample for {trip.silent_s:.2f} s "
            f"(limit {trip.limit_s:g} s; on_failure {trip.policy})"
        )
        if trip.policy != "warn":
            meta.update(
                await self._shutdown(trip.policy, f"watchdog {trip.device}", trip.t_mono_ns)
            )
            self._stop(message)
        await self._record("watchdog.tripped", message, "error", meta)

    async def _shutdown(self, action: str, why: str, since_ns: int) -> dict[str, Any]:
        """Write the safe targets (once per run) for a ``safe_shutdown`` action."""
        if action != "safe_shutdown" or self._safe_done:
            return {}
        self._safe_done = True
        reaction_ms = (self._clock.now_ns() - since_ns) / 1e6
        self.counters.reaction_ms.append(round(reaction_ms, 3))
        results: dict[str, str] = {}
        for channel, value in self._safe_targets.items():
            try:
                result = await self._write_channel(
                    channel, value, authorization_id=f"safety:{why.replace(' ', ':')}"
                )
            except Exception as exc:  # best effort: every target is attempted
                results[channel] = f"failed: {type(exc).__name__}: {exc}"
            else:
                results[channel] = "ok" if result.accepted else f"refused: {result.detail}"
        if not self._safe_targets:
            results["(none)"] = "no safe targets declared: devices go to their safe state at close"
        return {"reaction_ms": round(reaction_ms, 3), "safe_targets": results}

    async def _record(
        self, kind: str, message: str, severity: str, meta: Mapping[str, Any]
    ) -> None:
        # The writer's queue blocks while the disk is behind: never on this loop.
        await anyio.to_thread.run_sync(
            lambda: self._emit(kind, message, severity=severity, source="safety", metadata=meta)
        )

    # ------------------------------------------------------------------ interlocks
    def check_command(
        self, device: DevicePlan, command: Command, latest: Callable[[str], float | None]
    ) -> str | None:
        """``None`` if ``command`` to ``device`` respects every interlock, else why not."""
        refusal = self._gate.check(device, command, latest, self._clock.now_ns())
        if refusal is not None:
            self.counters.interlock_refusals += 1
        return refusal

    def command_accepted(self, device: DevicePlan, command: Command) -> None:
        """Record a write that the device accepted (the reference of rate limits)."""
        self._gate.accepted(device, command, self._clock.now_ns())

    def summary(self) -> dict[str, Any]:
        """``manifest.counts.safety``: alarms raised, watchdog trips, refusals, reactions."""
        c = self.counters
        return {
            "alarms_raised": dict(c.raised),
            "watchdog_trips": dict(c.watchdog_trips),
            "interlock_refusals": c.interlock_refusals,
            "safe_shutdown_reaction_ms": list(c.reaction_ms),
        }


class InterlockGate:
    """The interlocks of a rig, applied to device commands.

    Used by the run's safety monitor and, between runs, by the manual client, so a
    manual command is held to the same limits whether or not a run is going on.
    """

    def __init__(
        self, interlocks: Sequence[InterlockConfig], channels: Sequence[ChannelPlan]
    ) -> None:
        self._states = {c.channel: InterlockState(c) for c in interlocks}
        self._writes = {(c.device, c.field): c for c in channels if c.writable}

    def check(
        self,
        device: DevicePlan,
        command: Command,
        latest: Callable[[str], float | None],
        now_ns: int,
    ) -> str | None:
        """``None`` if ``command`` respects every interlock at ``now_ns``, else why not."""
        if not self._states:
            return None
        for field_name, raw in _written_fields(device, command).items():
            channel = self._writes.get((device.name, field_name))
            if channel is None or channel.name not in self._states:
                continue
            value = _to_value(channel, raw)
            refusal = self._states[channel.name].check(value, now_ns, latest(channel.name))
            if refusal is not None:
                return refusal
        return None

    def accepted(self, device: DevicePlan, command: Command, now_ns: int) -> None:
        """Record an accepted write (the reference of rate limits)."""
        if not self._states:
            return
        for field_name, raw in _written_fields(device, command).items():
            channel = self._writes.get((device.name, field_name))
            if channel is not None and channel.name in self._states:
                self._states[channel.name].accepted(_to_value(channel, raw), now_ns)


def _written_fields(device: DevicePlan, command: Command) -> dict[str, float]:
    fn = getattr(device.adapter, "written_fields", None)
    if fn is None:
        return {}
    try:
        return dict(fn(device.params, command))
    except (TypeError, ValueError, KeyError):
        return {}  # the adapter will refuse the malformed command itself


def _to_value(channel: ChannelPlan, raw: float) -> float:
    import numpy as np

    return float(np.asarray(channel.to_value(np.array([float(raw)])), dtype=np.float64)[0])


def _describe(t: AlarmTransition) -> str:
    if t.reason == "stale":
        return f"{t.channel} has had no sample for {t.value:.2f} s (limit {t.limit:g} s)"
    if t.reason == "rate":
        return f"{t.channel} changes at {t.value:g}/s (limit {t.limit:g}/s)"
    op = ">" if t.reason == "high" else "<"
    return f"{t.channel} = {t.value:g} {op} {t.limit:g} ({t.reason})"
