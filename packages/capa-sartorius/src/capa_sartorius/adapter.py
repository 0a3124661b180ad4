"""The ``sartorius.balance`` adapter: a Sartorius balance over SBI or xBPI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import capa
from capa_sartorius import sbi, xbpi
from capa_sartorius.params import BalanceParams
from capa_sartorius.reading import UNIT_TO_GRAMS, Reading
from capa_sartorius.rows import FAMILY, Row, to_emissions
from capa_sartorius.sim import PtySimulator
from capa_sartorius.transport import BalanceCommError, SerialLink

__all__ = ["COMMANDS", "SartoriusBalance"]

COMMANDS: dict[str, tuple[bytes, int]] = {
    # command name -> (SBI command, xBPI command)
    "tare": (sbi.TARE, xbpi.CMD_TARE),
    "zero": (sbi.ZERO, xbpi.CMD_ZERO),
    "internal_adjust": (sbi.INTERNAL_ADJUST, xbpi.CMD_INTERNAL_ADJUST),
}


class SartoriusBalance(capa.Adapter):
    """Sartorius balance (Entris, Quintix, Secura, Cubis...) over SBI (ASCII) or xBPI (binary).

    Polled: each tick prints one reading (SBI ``ESC P`` / xBPI read weight). With
    ``autoprint = true`` the balance sends lines by itself and each tick drains them, so one
    tick may give several rows. Every reading is recorded -- unstable ones with
    ``stable = 0`` and status ``unstable``, overload / underload with their flags. A timed
    out, garbled or lost exchange gives a ``comm_error`` row and a device event; the port
    is then reopened and sampling resumes. Commands: ``tare``, ``zero``,
    ``internal_adjust``. ``port = "sim://?mass_g=50&loss_g_per_s=0.01"`` runs the
    package's wire-level simulator behind a pseudo-terminal.
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

    # ------------------------------------------------------------------ description
    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """``serial:<port>`` (no I/O)."""
        return f"serial:{_balance_params(params).port}"

    @classmethod
    def fields(cls, params: capa.ConfigModel) -> Sequence[capa.FieldSpec]:
        """``mass`` in grams and the ``stable`` / ``overload`` / ``underload`` flags (0/1)."""
        return (
            capa.FieldSpec("mass", "g", "mass", description="net mass on the pan"),
            capa.FieldSpec("stable", "1", "flag", description="1 = reading stable"),
            capa.FieldSpec("overload", "1", "flag", description="1 = above weighing range"),
            capa.FieldSpec("underload", "1", "flag", description="1 = below weighing range"),
        )

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
            raise BalanceCommError("disconnected", "adapter is not open")
        if not self._link.is_open:
            self._link.open()
            if self._failed:
                events.append(
                    self._event("reconnected", "serial port reopened", capa.EventSeverity.INFO)
                )
        return self._link

    def _comm_failed(self, exc: BalanceCommError, attempt: int) -> capa.DeviceEvent:
        # Any failure reopens the port: a stale half-reply must not desync the next tick.
        if self._link is not None:
            self._link.close()
        self._failed = True
        return self._event(
            exc.kind,
            str(exc),
            capa.EventSeverity.WARNING,
            attempt=attempt,
            raw=exc.raw.hex(),
        )

    # ------------------------------------------------------------------ sampling
    def _row(self, t_req: int, t_recv: int, raw: bytes, reading: Reading) -> Row:
        if reading.unit and reading.unit.lower() in UNIT_TO_GRAMS:
            self._unit = reading.unit  # SBI blanks the unit while unstable: keep the last
        row = Row(self._ns(t_req), self._ns(t_recv), raw, reading, unit=self._unit)
        self._last = {
            "mass_unit": reading.unit or self._unit,
            "value": reading.value,
            "stable": reading.stable,
            "overload": reading.overload,
            "underload": reading.underload,
            "error_code": reading.error_code,
        }
        return row

    def _poll_once(self, link: SerialLink) -> Row:
        if self.p.protocol == "sbi":
            ex = link.sbi_request(sbi.PRINT)
            try:
                reading = sbi.parse_line(ex.raw)
            except sbi.SbiParseError as exc:
                raise BalanceCommError("garbled", str(exc), ex.raw) from exc
        else:
            reply, ex = link.xbpi_exchange(xbpi.CMD_READ_WEIGHT)
            try:
                reading = xbpi.reading_from_reply(reply)
            except xbpi.XbpiError as exc:
                raise BalanceCommError("garbled", str(exc), ex.raw) from exc
        return self._row(ex.t_request_ns, ex.t_receive_ns, ex.raw, reading)

    def _error_row(self, exc: BalanceCommError, t_req: int) -> Row:
        now = self._clock.now_ns()
        return Row(t_req, now, exc.raw, None, unit=self._unit, comm_error=exc.kind)

    async def read(self) -> Sequence[capa.Emission]:
        """One tick: a polled reading, or the lines an autoprinting balance sent."""
        events: list[capa.Emission] = []
        rows = self._drain(events) if self.p.autoprint else self._poll(events)
        if rows and rows[-1].reading is not None:
            self._failed = False
        for row in rows:
            code = row.reading.error_code if row.reading is not None else None
            if code is not None:
                events.append(
                    self._event(
                        "balance_error",
                        f"balance reports error {code}",
                        capa.EventSeverity.WARNING,
                        error_code=code,
                    )
                )
        return [*to_emissions(rows), *events]

    def _poll(self, events: list[capa.Emission]) -> list[Row]:
        t_req = self._clock.now_ns()
        last: BalanceCommError | None = None
        for attempt in range(self.p.retries + 1):
            try:
                return [self._poll_once(self._ensure_open(events))]
            except BalanceCommError as exc:
                events.append(self._comm_failed(exc, attempt))
                last = exc
        assert last is not None
        return [self._error_row(last, t_req)]

    def _drain(self, events: list[capa.Emission]) -> list[Row]:
        t_req = self._clock.now_ns()
        try:
            exchanges = self._ensure_open(events).sbi_drain(wait=True)
        except BalanceCommError as exc:
            events.append(self._comm_failed(exc, 0))
            return [self._error_row(exc, t_req)]
        rows = []
        for ex in exchanges:
            try:
                reading = sbi.parse_line(ex.raw)
            except sbi.SbiParseError as exc:
                # Recorded as a comm_error row at its receive time, between the good rows.
                events.append(
                    self._event("garbled", str(exc), capa.EventSeverity.WARNING, raw=ex.raw.hex())
                )
                rows.append(
                    Row(
                        self._ns(ex.t_receive_ns),
                        self._ns(ex.t_receive_ns),
                        ex.raw,
                        None,
                        unit=self._unit,
                        comm_error="garbled",
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
        sbi_code, xbpi_code = codes
        events: list[capa.Emission] = []
        try:
            link = self._ensure_open(events)
            if self.p.protocol == "sbi":
                link.sbi_send(sbi_code)
                # SBI acknowledges nothing; the next readings show whether it took effect.
                return self._result(True, f"sent {sbi_code!r} (SBI does not acknowledge)")
            reply = link.xbpi_request(xbpi_code)
        except BalanceCommError as exc:
            self._comm_failed(exc, 0)
            return self._result(False, f"{command.name}: {exc.kind}: {exc}")
        if not reply.ok:
            return self._result(False, f"{command.name} refused: {reply.error_text()}")
        return self._result(True, f"{command.name} done")

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
