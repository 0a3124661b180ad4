"""The ``sartorius.balance`` adapter: a Sartorius balance over SBI or xBPI."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import capa
from capa_sartorius import sbi, xbpi
from capa_sartorius.params import BalanceParams
from capa_sartorius.reading import UNIT_TO_GRAMS, Reading, to_grams
from capa_sartorius.rows import FAMILY, Row, to_emissions
from capa_sartorius.transport import BalanceCommError, SerialLink

if TYPE_CHECKING:  # the simulator is imported only when a sim:// port is opened
    from capa_sartorius.sim import PtySimulator

__all__ = ["COMMANDS", "SartoriusBalance"]

_T = TypeVar("_T")

COMMANDS: dict[str, tuple[bytes, int, bytes]] = {
    # command name -> (SBI command, xBPI opcode, xBPI arguments)
    "tare": (sbi.TARE, xbpi.OP_TARE, b""),
    "zero": (sbi.ZERO, xbpi.OP_ZERO, b""),
    "internal_adjust": (
        sbi.INTERNAL_ADJUST,
        xbpi.OP_START_ADJUSTMENT,
        xbpi.tlv_u8(xbpi.ADJUST_INTERNAL),
    ),
}
RECONNECT_FIRST_S = 0.25
"""Wait before the second reopen attempt after a lost port (the first is immediate)."""
RECONNECT_MAX_S = 5.0
"""Longest wait between reopen attempts (the wait doubles up to this)."""
PORT_LOST = frozenset({"port_lost_idle", "port_lost_mid_exchange", "open_failed", "port_down"})
"""Failures after which the port is closed and reopened with back-off."""


class SartoriusBalance(capa.Adapter):
    """Sartorius balance (Entris, Quintix, Secura, Cubis...) over SBI (ASCII) or xBPI (binary).

    Polled: each tick prints one reading (SBI ``ESC P`` / xBPI read net weight ``0x1E``,
    plus the status block ``0x30`` when the reading is off scale). With
    ``autoprint = true`` the balance sends lines by itself and each tick drains them, so one
    tick may give several rows. Every reading is recorded -- unstable ones with
    ``stable = 0`` and status ``unstable``, overload / underload with their flags. A failed
    exchange gives a ``comm_error`` row and one device event whose kind names the failure
    (``no_reply``, ``garbage``, ``bad_checksum``, ``port_lost_idle``,
    ``port_lost_mid_exchange``...); a lost port is reopened with back-off and sampling
    resumes. Commands: ``tare``, ``zero``, ``internal_adjust``.
    ``port = "sim://?mass_g=50&loss_g_per_s=0.01"`` runs the package's wire-level
    simulator behind a pseudo-terminal.
    """

    id: ClassVar[str] = "sartorius.balance"
    Params: ClassVar[type[capa.ConfigModel]] = BalanceParams
    capabilities: ClassVar[frozenset[str]] = frozenset({"has_tare"})
    family: ClassVar[str | None] = FAMILY

    def __init__(self, name: str, params: capa.ConfigModel) -> None:
        super().__init__(name, params)
        self.p: BalanceParams = _balance_params(params)
        self.simulator: PtySimulator | None = None
        """The simulator serving a ``sim://`` port (``None`` for a real port)."""
        self._link: SerialLink | None = None
        self._clock: capa.RunClock = capa.RunClock()
        self._unit = "g"
        self._failed = False
        self._last: dict[str, Any] = {}
        # Events met while running a command go out with the next tick. Commands and reads
        # may run on different worker threads: the lock guards the hand-over list.
        self._pending: list[capa.Emission] = []
        self._pending_lock = threading.Lock()
        self._retry_at = 0.0  # time.monotonic() of the next reopen attempt
        self._backoff_s = 0.0

    # ------------------------------------------------------------------ description
    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """``serial:<port>`` (no I/O)."""
        return f"serial:{_balance_params(params).port}"

    @classmethod
    def fields(cls, params: capa.ConfigModel) -> Sequence[capa.FieldSpec]:
        """``mass`` (g), the ``stable`` / ``overload`` / ``underload`` flags, ``gross``.

        ``gross`` (grams) is there only with ``gross = true``.
        """
        specs = [
            capa.FieldSpec("mass", "g", "mass", description="net mass on the pan"),
            capa.FieldSpec("stable", "1", "flag", description="1 = reading stable"),
            capa.FieldSpec("overload", "1", "flag", description="1 = above weighing range"),
            capa.FieldSpec("underload", "1", "flag", description="1 = below weighing range"),
        ]
        if _balance_params(params).gross:
            specs.append(capa.FieldSpec("gross", "g", "mass", description="gross mass"))
        return tuple(specs)

    def poll_interval_s(self) -> float:
        """Seconds between reads."""
        return 1.0 / self.p.rate_hz

    # ------------------------------------------------------------------ connection
    async def open(self) -> None:
        """Open the serial port (starting the simulator for ``sim://``). Idempotent."""
        if self._link is None:
            self._link = _make_link(self.p, self)
        self._link.open()

    async def close(self) -> None:
        """Close the port and stop an owned simulator. A balance has no unsafe state."""
        if self._link is not None:
            self._link.close()
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        self._link = None

    async def start(self, ctx: capa.AdapterContext) -> None:
        """Stamp readings with the run clock from now on."""
        self._clock = ctx.clock

    def _ns(self, monotonic_ns: int) -> int:
        return self._clock.to_run_ns(monotonic_ns)

    def _event(
        self, kind: str, message: str, severity: capa.EventSeverity, **metadata: Any
    ) -> capa.DeviceEvent:
        return capa.DeviceEvent(
            kind=f"sartorius.{kind}",
            message=f"{self.name}: {message}",
            severity=severity,
            metadata={"port": self.p.port, "protocol": self.p.protocol, **metadata},
            t_mono_ns=self._clock.now_ns(),
        )

    def _ensure_open(self, events: list[capa.Emission]) -> SerialLink:
        if self._link is None:
            raise BalanceCommError("port_lost_idle", "adapter is not open")
        if not self._link.is_open:
            now = time.monotonic()
            if now < self._retry_at:
                raise BalanceCommError(
                    "port_down",
                    f"port closed; next reopen attempt in {self._retry_at - now:.2f} s",
                )
            try:
                self._link.open()
            except BalanceCommError:
                # Back-off: immediate first attempt, then doubling waits up to the cap.
                self._backoff_s = min(RECONNECT_MAX_S, max(RECONNECT_FIRST_S, 2 * self._backoff_s))
                self._retry_at = time.monotonic() + self._backoff_s
                raise
            self._backoff_s = 0.0
            if self._failed:
                events.append(
                    self._event("reconnected", "serial port reopened", capa.EventSeverity.INFO)
                )
        return self._link

    def _comm_failed(self, exc: BalanceCommError, attempt: int) -> capa.DeviceEvent | None:
        self._failed = True
        if exc.kind in PORT_LOST and self._link is not None:
            self._link.close()  # idempotent; the transport already closed a dead port
        if exc.kind == "port_down":
            return None  # waiting out the back-off: the tick's comm_error row says so
        metadata: dict[str, Any] = {"attempt": attempt, "raw": exc.raw.hex()}
        if exc.kind == "open_failed":
            metadata["next_attempt_s"] = round(self._backoff_s, 3)
        return self._event(
            exc.kind, str(exc), capa.EventSeverity.WARNING, comm_error=exc.kind, **metadata
        )

    def _late_reply(self, link: SerialLink, events: list[capa.Emission]) -> None:
        stale = link.take_stale()
        if stale:
            events.append(
                self._event(
                    "late_reply",
                    f"discarded {len(stale)} byte(s) that arrived after an earlier "
                    "request had timed out",
                    capa.EventSeverity.WARNING,
                    comm_error="late_reply",
                    raw=stale.hex(),
                )
            )

    # ------------------------------------------------------------------ sampling
    def _row(
        self, t_req: int, t_recv: int, raw: bytes, reading: Reading, *, gross: float = math.nan
    ) -> Row:
        if reading.unit and reading.unit.lower() in UNIT_TO_GRAMS:
            self._unit = reading.unit  # SBI blanks the unit while unstable: keep the last
        row = Row(self._ns(t_req), self._ns(t_recv), raw, reading, unit=self._unit, gross=gross)
        self._last = {
            "mass_unit": reading.unit or self._unit,
            "value": reading.value,
            "stable": reading.stable,
            "overload": reading.overload,
            "underload": reading.underload,
            "error_code": reading.error_code,
        }
        return row

    def _poll_once(self, link: SerialLink, events: list[capa.Emission]) -> Row:
        if self.p.protocol == "sbi":
            try:
                ex = link.sbi_request(sbi.PRINT)
            finally:
                self._late_reply(link, events)
            try:
                reading = sbi.parse_line(ex.raw)
            except sbi.SbiParseError as exc:
                raise BalanceCommError("garbage", str(exc), ex.raw) from exc
            return self._row(ex.t_request_ns, ex.t_receive_ns, ex.raw, reading)
        try:
            reply, ex = link.xbpi_exchange(xbpi.OP_READ_NET)
        finally:
            self._late_reply(link, events)
        measurement = self._measurement(reply)
        status = None
        if measurement.off_scale:
            # The value bytes cannot say overload from underload: the status block can.
            status_reply = link.xbpi_request(xbpi.OP_READ_STATUS_BLOCK)
            status = self._decoded(status_reply, xbpi.decode_status_block)
        gross = math.nan
        if self.p.gross:
            g = self._measurement(link.xbpi_request(xbpi.OP_READ_GROSS))
            gross = math.nan if g.value is None else to_grams(g.value, g.unit)
        reading = xbpi.reading_from_measurement(measurement, status)
        return self._row(ex.t_request_ns, ex.t_receive_ns, ex.raw, reading, gross=gross)

    def _measurement(self, reply: xbpi.Reply) -> xbpi.Measurement:
        return self._decoded(reply, xbpi.decode_measurement)

    @staticmethod
    def _decoded(reply: xbpi.Reply, decode: Callable[[bytes], _T]) -> _T:
        if reply.is_error:
            raise BalanceCommError(
                "device_error", f"balance refused the read: {reply.error_text()}", reply.raw
            )
        if reply.subtype != xbpi.SUB_MEASUREMENT:
            raise BalanceCommError(
                "garbage", f"unexpected xBPI reply subtype 0x{reply.subtype:02x}", reply.raw
            )
        try:
            return decode(reply.body)
        except xbpi.XbpiError as exc:
            raise BalanceCommError("garbage", str(exc), reply.raw) from exc

    def _error_row(self, exc: BalanceCommError, t_req: int) -> Row:
        now = self._clock.now_ns()
        return Row(t_req, now, exc.raw, None, unit=self._unit, comm_error=exc.kind)

    async def read(self) -> Sequence[capa.Emission]:
        """One tick: a polled reading, or the lines an autoprinting balance sent."""
        with self._pending_lock:
            events, self._pending = self._pending, []
        rows = self._drain(events) if self.p.autoprint else self._poll(events)
        gross = self.p.gross
        if rows and rows[-1].reading is not None:
            self._failed = False
        for row in rows:
            r = row.reading
            if r is not None and (r.error_code is not None or (r.status_text and not r.busy)):
                what = r.status_text or f"error {r.error_code}"
                events.append(
                    self._event(
                        "balance_error",
                        f"balance reports {what}",
                        capa.EventSeverity.WARNING,
                        error_code=-1 if r.error_code is None else r.error_code,
                        text=r.status_text,
                    )
                )
        return [*to_emissions(rows, gross=gross), *events]

    def _poll(self, events: list[capa.Emission]) -> list[Row]:
        t_req = self._clock.now_ns()
        last: BalanceCommError | None = None
        for attempt in range(self.p.retries + 1):
            try:
                return [self._poll_once(self._ensure_open(events), events)]
            except BalanceCommError as exc:
                event = self._comm_failed(exc, attempt)
                if event is not None:
                    events.append(event)
                last = exc
                if exc.kind in PORT_LOST:
                    break  # a lost port is reopened on a later tick, with back-off
        assert last is not None
        return [self._error_row(last, t_req)]

    def _drain(self, events: list[capa.Emission]) -> list[Row]:
        t_req = self._clock.now_ns()
        try:
            exchanges = self._ensure_open(events).sbi_drain(wait=True)
        except BalanceCommError as exc:
            event = self._comm_failed(exc, 0)
            if event is not None:
                events.append(event)
            return [self._error_row(exc, t_req)]
        rows = []
        for ex in exchanges:
            try:
                reading = sbi.parse_line(ex.raw)
            except sbi.SbiParseError as exc:
                # Recorded as a comm_error row at its receive time, between the good rows.
                events.append(
                    self._event(
                        "garbage",
                        str(exc),
                        capa.EventSeverity.WARNING,
                        comm_error="garbage",
                        raw=ex.raw.hex(),
                    )
                )
                rows.append(
                    Row(
                        self._ns(ex.t_receive_ns),
                        self._ns(ex.t_receive_ns),
                        ex.raw,
                        None,
                        unit=self._unit,
                        comm_error="garbage",
                    )
                )
                continue
            rows.append(self._row(ex.t_receive_ns, ex.t_receive_ns, ex.raw, reading))
        return rows

    # ------------------------------------------------------------------ commands
    async def command(self, command: capa.Command) -> capa.CommandResult:
        """``tare``, ``zero`` or ``internal_adjust``; a refusal is ``accepted=False``."""
        codes = COMMANDS.get(command.name)
        if codes is None:
            known = ", ".join(sorted(COMMANDS))
            return self._result(False, f"unknown command {command.name!r} (known: {known})")
        if command.args:
            return self._result(False, f"{command.name} takes no arguments")
        events: list[capa.Emission] = []
        try:
            return self._command(command.name, codes, events)
        finally:
            # Reconnect, late reply or failure events go out with the next tick.
            with self._pending_lock:
                self._pending.extend(events)

    def _command(
        self, name: str, codes: tuple[bytes, int, bytes], events: list[capa.Emission]
    ) -> capa.CommandResult:
        sbi_code, opcode, args = codes
        try:
            link = self._ensure_open(events)
            if self.p.protocol == "sbi":
                link.sbi_send(sbi_code)
                # SBI acknowledges nothing; the next readings show whether it took effect.
                return self._result(True, f"sent {sbi_code!r} (SBI does not acknowledge)")
            try:
                reply = link.xbpi_request(opcode, args)
            finally:
                self._late_reply(link, events)
        except BalanceCommError as exc:
            event = self._comm_failed(exc, 0)
            if event is not None:
                events.append(event)
            return self._result(False, f"{name}: {exc.kind}: {exc}")
        if reply.is_error:
            detail = f"{name} refused: {reply.error_text()}"
        elif reply.subtype != xbpi.SUB_ACK:
            detail = f"{name}: unexpected reply subtype 0x{reply.subtype:02x}"
        else:
            return self._result(True, f"{name} acknowledged")
        return self._result(False, detail)

    def _result(self, accepted: bool, detail: str) -> capa.CommandResult:
        return capa.CommandResult(accepted=accepted, detail=detail, t_mono_ns=self._clock.now_ns())

    async def snapshot(self) -> Mapping[str, Any]:
        """The last reading and the connection state."""
        connected = self._link is not None and self._link.is_open
        return {"connected": connected, "protocol": self.p.protocol, **self._last}

    # ------------------------------------------------------------------ discovery
    @classmethod
    async def handshake(cls, params: capa.ConfigModel) -> capa.HandshakeResult:
        """Open the port, read model / serial number / software version, close. Read-only."""
        from capa_sartorius.discovery import identify

        return identify(_balance_params(params))

    @classmethod
    async def discover(cls) -> Sequence[capa.DiscoveredDevice]:
        """Serial ports x protocols that answer an identity request (bounded in time)."""
        from capa_sartorius.discovery import discover

        return discover(cls)


def _balance_params(params: capa.ConfigModel) -> BalanceParams:
    if not isinstance(params, BalanceParams):
        raise TypeError(f"sartorius.balance needs BalanceParams, got {type(params).__name__}")
    return params


def _make_link(params: BalanceParams, owner: SartoriusBalance | None) -> SerialLink:
    """A link to the port; for ``sim://`` start a simulator (owned by ``owner``)."""
    from capa_sartorius.discovery import start_simulator
    from capa_sartorius.sim import is_sim_url

    if not is_sim_url(params.port):
        return SerialLink(params, lambda: params.port)
    sim = start_simulator(params)
    if owner is not None:
        owner.simulator = sim
    return SerialLink(params, lambda: sim.path)
