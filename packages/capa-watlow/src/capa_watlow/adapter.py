"""The ``watlow.ezzone_pm`` adapter: EZ-Zone PM controllers over Standard Bus or Modbus RTU."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import capa
from capa_watlow.config import EzZonePMParams, field_suffix
from capa_watlow.errors import CommError, DeviceRefused, WordOrderMismatch
from capa_watlow.params import (
    ENUM_HIGH_LOW,
    ENUM_LOW_HIGH,
    IDENTITY,
    LOOP_PARAMETERS,
    WORD_ORDER,
    ParamKind,
    ParamSpec,
    by_id,
    by_name,
)
from capa_watlow.sim import url as sim_url
from capa_watlow.units import convert_temperature

if TYPE_CHECKING:
    from capa_watlow.client import ModbusRtuClient, StdBusClient
    from capa_watlow.stdbus import Value
    from capa_watlow.transport import SharedPort

__all__ = ["EzZonePM"]

FAMILY = "watlow"


def _resource_key(params: EzZonePMParams) -> str:
    if sim_url.is_sim_url(params.port):
        return f"serial:{sim_url.parse_sim_url(params.port).canonical()}"
    return f"serial:{params.port}"


class EzZonePM(capa.Adapter):
    """Watlow EZ-Zone PM temperature controller (one controller, one or more loops).

    Polled: every tick reads process value, closed-loop set point and heat power of each
    configured loop and emits one sample row, plus the native rows (wire values with
    request and receive times) for ``device_records/watlow.parquet``. A tick whose
    request times out or whose reply is garbled emits a ``comm_error`` event and a
    ``comm_error`` sample status; the port is re-opened and sampling resumes on the next
    tick. Controllers on one RS-485 port share one connection (one resource id).

    Fields (loop 1 has no suffix, loop *n* ends in ``_<n>``): ``process_value``,
    ``setpoint`` (writable), ``output_power`` (%). Commands: ``set_setpoint``
    (``value``, optional ``instance``), ``write_parameter`` (``parameter`` name or Watlow
    id, ``value``, optional ``instance``). Closing leaves the controller running at its
    current set point (the PM's own safe behaviour; capa never turns a loop off silently).
    """

    id: ClassVar[str] = "watlow.ezzone_pm"
    Params: ClassVar[type[capa.ConfigModel]] = EzZonePMParams
    capabilities: ClassVar[frozenset[str]] = frozenset({"has_setpoint"})
    family: ClassVar[str | None] = FAMILY

    def __init__(self, name: str, params: capa.ConfigModel) -> None:
        super().__init__(name, params)
        self.cfg = cast("EzZonePMParams", params)
        self._port: SharedPort | None = None
        self._client: StdBusClient | ModbusRtuClient | None = None
        self._sim: bool = False
        self._clock: capa.RunClock | None = None
        self._failed = False
        self._failures = 0
        self._next_reconnect = 0.0
        self._last: dict[str, float] = {}

    # ---------------------------------------------------------------- description
    @classmethod
    def resource_id(cls, params: capa.ConfigModel) -> str:
        """``serial:<port>``; for ``sim://`` the normalised URL (one per simulated bus)."""
        return _resource_key(cast("EzZonePMParams", params))

    @classmethod
    def fields(cls, params: capa.ConfigModel) -> Sequence[capa.FieldSpec]:
        """Process value, set point and output power of every configured loop."""
        cfg = cast("EzZonePMParams", params)
        out: list[capa.FieldSpec] = []
        for instance in cfg.instances:
            sfx = field_suffix(instance)
            out += [
                capa.FieldSpec(f"process_value{sfx}", cfg.unit, "process_value",
                               description=f"loop {instance} process value (Analog Input Value)"),
                capa.FieldSpec(f"setpoint{sfx}", cfg.unit, "setpoint", writable=True,
                               description=f"loop {instance} closed-loop set point"),
                capa.FieldSpec(f"output_power{sfx}", "%", "output_power",
                               description=f"loop {instance} heat power"),
            ]  # fmt: skip
        return out

    # ---------------------------------------------------------------- connection
    async def open(self) -> None:
        """Open (or join) the shared port and check the controller answers.

        On Modbus the controller's word order is checked too: a mismatch with
        ``params.word_order`` is refused (:class:`WordOrderMismatch`) instead of reading
        every float as nonsense.
        """
        if self._client is not None:
            return
        self._connect()
        try:
            self._read_with_retries(IDENTITY[0], 1)
            if self.cfg.protocol == "modbus_rtu":
                self._check_word_order()
        except (CommError, DeviceRefused) as exc:
            await self.close()
            raise CommError(f"{self.name}: controller at {self.cfg.port} address "
                            f"{self.cfg.address} does not answer: {exc}") from None  # fmt: skip
        except WordOrderMismatch:
            await self.close()
            raise

    def _check_word_order(self) -> None:
        from capa_watlow import modbus
        from capa_watlow.client import ModbusRtuClient

        client = self._client
        assert isinstance(client, ModbusRtuClient)
        actual: str | None = None
        source = "its Modbus Word Order, parameter 17043"
        try:
            # An enumeration takes one register (PM map; what a PM3 answers watlowlib).
            (setting,) = client.read_registers(WORD_ORDER.register_for(1), 1)
        except DeviceRefused:
            setting = -1  # no such register on this firmware: fall back to a known value
        actual = {ENUM_HIGH_LOW: "high_low", ENUM_LOW_HIGH: "low_high"}.get(setting)
        if actual is None:
            # Hardware ID (1001, register 0) is 0-38 by the PM map (19 or 28 in practice);
            # read in the wrong order it becomes n x 65536.
            words = client.read_registers(IDENTITY[0].register_for(1), 2)
            plausible = [
                order
                for order in ("low_high", "high_low")
                if 0 <= modbus.registers_to_int32(words, order) <= 38
            ]
            if len(plausible) == 1:
                actual, source = plausible[0], "its Hardware ID, parameter 1001"
        if actual is not None and actual != self.cfg.word_order:
            raise WordOrderMismatch(
                f"{self.name}: Modbus word order mismatch on {self.cfg.port} unit "
                f"{self.cfg.address}: the controller sends 32-bit values {actual} ({source})"
                f' but params word_order = "{self.cfg.word_order}"; set word_order = '
                f'"{actual}" in the device params (or the controller\'s Modbus Word Order '
                f"to match)"
            )

    def _connect(self) -> None:
        from capa_watlow.client import make_client
        from capa_watlow.transport import acquire_port, release_port

        cfg = self.cfg
        if sim_url.is_sim_url(cfg.port):
            sim = sim_url.acquire(cfg.port)
            self._sim = True

            def resolve() -> str:
                return sim.path
        else:

            def resolve() -> str:
                return cfg.port

        try:
            port = acquire_port(
                _resource_key(cfg), resolve, cfg.protocol, cfg.line_speed, cfg.timeout_s,
                parity=cfg.parity,
            )  # fmt: skip
        except capa.CapaError:
            self._release_sim()
            raise
        self._port = port
        self._client = make_client(
            port, cfg.protocol, cfg.address, timeout_s=cfg.timeout_s, word_order=cfg.word_order
        )
        try:
            port.ensure_open()
        except CommError:
            release_port(port)
            self._port = self._client = None
            self._release_sim()
            raise

    def _release_sim(self) -> None:
        if self._sim:
            sim_url.release(self.cfg.port)
            self._sim = False

    async def close(self) -> None:
        """Leave the shared port (the last user closes it). Idempotent."""
        from capa_watlow.transport import release_port

        if self._port is not None:
            release_port(self._port)
        self._port = self._client = None
        self._release_sim()

    async def start(self, ctx: capa.AdapterContext) -> None:
        """Stamp samples with the run clock from now on."""
        self._clock = ctx.clock

    async def stop(self) -> None:
        """Sampling stops; the connection stays open."""
        self._clock = None

    def _now_ns(self) -> int:
        return self._clock.now_ns() if self._clock is not None else time.monotonic_ns()

    # ---------------------------------------------------------------- I/O helpers
    def _read_with_retries(self, spec: ParamSpec, instance: int) -> Value:
        return self._with_retries(lambda c: c.read(spec, instance))

    def _read_number(self, spec: ParamSpec, instance: int) -> float:
        value = self._read_with_retries(spec, instance)
        if isinstance(value, str):
            raise CommError(f"{self.name}: {spec.name} answered text {value!r}, not a number")
        return float(value)

    def _with_retries(self, op: Any) -> Value:
        if self._client is None:
            raise CommError(f"{self.name}: not open")
        last: CommError | None = None
        for _ in range(self.cfg.retries + 1):
            try:
                value: Value = op(self._client)
                return value
            except CommError as exc:
                last = exc
        assert last is not None
        raise last

    def _to_channel(self, spec: ParamSpec, wire: Value) -> Value:
        if not spec.temperature or isinstance(wire, str):
            return wire
        return convert_temperature(float(wire), self.cfg.wire_unit, self.cfg.unit)

    def _to_wire(self, spec: ParamSpec, value: Value) -> Value:
        if not spec.temperature or isinstance(value, str):
            return value
        return convert_temperature(float(value), self.cfg.unit, self.cfg.wire_unit)

    def _comm_failed(self) -> None:
        # Drop the connection; re-open on the next tick, backing off after repeated failures.
        self._failed = True
        self._failures += 1
        if self._port is not None:
            self._port.reset()
        delay = 0.0 if self._failures <= 1 else 0.1 * 2 ** (self._failures - 2)
        self._next_reconnect = time.monotonic() + min(self.cfg.reconnect_max_delay_s, delay)

    def _may_try(self) -> bool:
        if not self._failed:
            return True
        return self.cfg.reconnect == "next_tick" and time.monotonic() >= self._next_reconnect

    # ---------------------------------------------------------------- sampling
    async def read(self) -> Sequence[capa.Emission]:
        """Poll every loop once; a comm failure is an event and a comm_error row."""
        t_request = self._now_ns()
        if not self._may_try():
            return [self._error_batch()]  # still backing off: no new event per tick
        recovering = self._failed
        rows: list[dict[str, float]] = []
        receipts: list[int] = []
        try:
            if self._port is None:
                raise CommError(f"{self.name}: not open")
            self._port.ensure_open()
            for instance in self.cfg.instances:
                rows.append(
                    {spec.name: self._read_number(spec, instance) for spec in LOOP_PARAMETERS}
                )
                receipts.append(self._now_ns())
        except CommError as exc:
            self._comm_failed()
            return [self._error_event(exc.kind, exc, t_request), self._error_batch()]
        except DeviceRefused as exc:
            return [self._error_event(exc.kind, exc, t_request), self._error_batch()]
        events: list[capa.Emission] = []
        late = self._port.take_late_bytes()
        if late:
            events.append(
                capa.DeviceEvent(
                    "comm_error.late_reply",
                    f"{self.name}: discarded {late} bytes of a reply that came after its "
                    f"request had timed out on {self.cfg.port}",
                    capa.EventSeverity.WARNING,
                    {"port": self.cfg.port, "bytes": late},
                    t_request,
                )
            )
        if recovering:
            events.append(
                capa.DeviceEvent(
                    "reconnected",
                    f"{self.name}: sampling resumed on {self.cfg.port}",
                    capa.EventSeverity.INFO,
                    {"failures": self._failures},
                    self._now_ns(),
                )
            )
        self._failed, self._failures = False, 0
        values: dict[str, list[float]] = {}
        for instance, row in zip(self.cfg.instances, rows, strict=True):
            sfx = field_suffix(instance)
            for spec in LOOP_PARAMETERS:
                value = float(self._to_channel(spec, row[spec.name]))
                values[f"{spec.name}{sfx}"] = [value]
                self._last[f"{spec.name}{sfx}"] = value
        t_sample = (t_request + receipts[-1]) // 2
        records = capa.DeviceRecords(FAMILY, self._records(rows, t_request, receipts, t_sample))
        return [*events, capa.SampleBatch([t_sample], values), records]

    def _error_batch(self) -> capa.SampleBatch:
        nan = [math.nan]
        values = {f.name: nan for f in self.fields(self.cfg)}
        return capa.SampleBatch([self._now_ns()], values, capa.SampleStatus.COMM_ERROR)

    def _records(
        self, rows: list[dict[str, float]], t_request: int, receipts: list[int], t_sample: int
    ) -> dict[str, list[Any]]:
        n = len(rows)
        return {
            "t_mono_ns": [t_sample] * n,
            "t_request_ns": [t_request] * n,
            "t_receive_ns": receipts,
            "device": [self.name] * n,
            "address": [self.cfg.address] * n,
            "protocol": [self.cfg.protocol] * n,
            "instance": list(self.cfg.instances),
            "process_value_wire": [r["process_value"] for r in rows],
            "setpoint_wire": [r["setpoint"] for r in rows],
            "output_power": [r["output_power"] for r in rows],
            "wire_unit": [self.cfg.wire_unit] * n,
        }

    def _error_event(self, kind: str, exc: CommError | DeviceRefused, t: int) -> capa.DeviceEvent:
        code = getattr(exc, "code", None)
        return capa.DeviceEvent(
            kind, f"{self.name}: {exc}", capa.EventSeverity.WARNING,
            {"port": self.cfg.port, "address": self.cfg.address, "protocol": self.cfg.protocol,
             "error": type(exc).__name__, **({"code": code} if code is not None else {})}, t,
        )  # fmt: skip

    async def snapshot(self) -> Mapping[str, Any]:
        """Last values read, and whether the link is currently failed."""
        return {**self._last, "comm_failed": self._failed}

    # ---------------------------------------------------------------- commands
    @classmethod
    def written_fields(cls, params: capa.ConfigModel, command: capa.Command) -> Mapping[str, float]:
        """The set point a ``write``, ``set_setpoint`` or ``write_parameter`` sets.

        So the run's interlocks hold a controller's own verbs to the same limits as the
        uniform ``write``: ``set_setpoint {value, instance?}`` and ``write_parameter`` of
        the set point parameter (by name or id) both count as writes of
        ``setpoint[_n]``.
        """
        args = command.args
        if command.name == capa.Command.WRITE:
            return {str(args["field"]): float(args["value"])}
        if command.name == "set_setpoint":
            instance = int(args.get("instance", 1))
            field = args.get("field") or f"setpoint{field_suffix(instance)}"
            return {str(field): float(args["value"])}
        if command.name == "write_parameter":
            parameter = args["parameter"]
            spec = (
                by_name(parameter)
                if isinstance(parameter, str) and not parameter.isdigit()
                else by_id(int(str(parameter)))
            )
            if spec is not None and spec.name == "setpoint":
                instance = int(args.get("instance", 1))
                return {f"setpoint{field_suffix(instance)}": float(args["value"])}
        return {}

    async def command(self, command: capa.Command) -> capa.CommandResult:
        """``write {field, value}``, ``set_setpoint``, ``write_parameter``.

        A refusal or bus failure is ``accepted=False``, never an exception.
        """
        try:
            spec, instance, value = self._parse_command(command)
        except (KeyError, ValueError, TypeError) as exc:
            return capa.CommandResult(False, f"{command.name}: {exc}", self._now_ns())
        if self._failed and self.cfg.reconnect == "never":
            detail = "link failed earlier and reconnect = 'never'; re-open the device"
            return capa.CommandResult(False, detail, self._now_ns())
        wire = self._to_wire(spec, value)
        try:
            echoed = self._with_retries(lambda c: c.write(spec, instance, wire))
        except DeviceRefused as exc:
            return capa.CommandResult(False, f"controller refused: {exc}", self._now_ns())
        except CommError as exc:
            self._comm_failed()
            return capa.CommandResult(False, f"no valid reply: {exc}", self._now_ns())
        readback = self._to_channel(spec, echoed)
        unit = self.cfg.unit if spec.temperature else spec.unit
        shown = f"{readback:g}" if isinstance(readback, float) else str(readback)
        return capa.CommandResult(
            True, f"{spec.name} loop {instance} = {shown} {unit}".rstrip(), self._now_ns(),
            readback,
        )  # fmt: skip

    def _parse_command(self, command: capa.Command) -> tuple[ParamSpec, int, Value]:
        args = dict(command.args)
        if command.name == capa.Command.WRITE:
            # capa's uniform verb for writable fields (what method steps send): the only
            # writable fields are the loops' set points, so it is set_setpoint by field.
            if "field" not in args:
                raise ValueError("write needs a field (setpoint, setpoint_2, ...)")
            command = capa.Command("set_setpoint", args, command.authorization_id)
        if command.name == "set_setpoint":
            instance = int(args.get("instance", 1))
            field = args.get("field")
            if field is not None:
                instance = self._instance_of_field(str(field))
            if instance not in self.cfg.instances:
                raise ValueError(
                    f"loop {instance} is not configured (instances {list(self.cfg.instances)})"
                )
            return by_name("setpoint"), instance, float(args["value"])
        if command.name == "write_parameter":
            parameter = args["parameter"]
            spec = self._spec_for(parameter, args)
            if not spec.writable:
                raise ValueError(f"{spec.name} ({spec.param_id}) is read-only")
            return spec, int(args.get("instance", 1)), _typed(spec.kind, args["value"])
        raise ValueError("unknown command; use write, set_setpoint or write_parameter")

    def _instance_of_field(self, field: str) -> int:
        for instance in self.cfg.instances:
            if field == f"setpoint{field_suffix(instance)}":
                return instance
        raise ValueError(f"{field!r} is not a writable field of this device")

    def _spec_for(self, parameter: object, args: Mapping[str, Any]) -> ParamSpec:
        if isinstance(parameter, str) and not parameter.isdigit():
            return by_name(parameter)
        param_id = int(str(parameter))
        known = by_id(param_id)
        if known is not None:
            return known
        # A parameter this package has no table entry for: its type ("kind", default
        # float) and, on Modbus, its register must be given.
        if self.cfg.protocol == "modbus_rtu" and "register" not in args:
            raise ValueError(f"parameter {param_id} is not in the table: give its 'register'")
        kind = ParamKind(str(args.get("kind", "float")))
        register = int(args["register"]) if "register" in args else None
        return ParamSpec(
            f"parameter_{param_id}", param_id, kind, register, stride=0,
            instances=255 if register is None else 1,
            temperature=bool(args.get("temperature", False)), writable=True,
        )  # fmt: skip

    # ---------------------------------------------------------------- discovery
    @classmethod
    async def discover(cls) -> Sequence[capa.DiscoveredDevice]:
        """Scan serial ports × Standard Bus / Modbus × addresses 1-16 (read-only)."""
        from capa_watlow.discovery import discover_ports, list_serial_ports

        return discover_ports(list_serial_ports())

    @classmethod
    async def handshake(cls, params: capa.ConfigModel) -> capa.HandshakeResult:
        """Open, read the Device Info parameters, close. Read-only.

        On Modbus the word order is checked first; a mismatch is a failed handshake
        naming the setting.
        """
        adapter = cls("handshake", params)
        try:
            adapter._connect()
            if adapter.cfg.protocol == "modbus_rtu":
                adapter._check_word_order()  # else the identity below would be nonsense
            identity = {s.name: int(adapter._read_number(s, 1)) for s in IDENTITY}
        except capa.CapaError as exc:  # no reply, refusal, port conflict: all a failed check
            return capa.HandshakeResult(False, str(exc))
        finally:
            await adapter.close()
        detail = (f"EZ-Zone PM hardware id {identity['hardware_id']}, firmware "
                  f"{identity['firmware_id']}.{identity['software_version']} "
                  f"build {identity['software_build']}")  # fmt: skip
        return capa.HandshakeResult(True, detail, identity)


def _typed(kind: ParamKind, raw: object) -> Value:
    """A command argument as a value of ``kind`` (``ValueError`` if it is not one)."""
    if kind is ParamKind.STRING:
        return str(raw)
    if kind is ParamKind.FLOAT:
        return float(str(raw)) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
    number = float(str(raw)) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
    if not number.is_integer():
        raise ValueError(f"a {kind} parameter needs a whole number, got {raw!r}")
    return int(number)
