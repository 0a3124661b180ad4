"""Layered validation of experiment, hardware and method files.

Layers run in order — schema, references, resources, live — and each reports *every*
problem it finds. A later layer runs only when the earlier ones found no error, since its
findings would otherwise be noise (a channel cannot be checked against a device whose
params are invalid). Nothing here raises for bad input: every finding is a
:class:`~capa.problems.Problem` in the returned :class:`Report`, and nothing is written.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capa.config.check_hardware import (
    ResolvedHardware,
    check_hardware,
    check_live,
    check_resources,
)
from capa.config.check_method import ResolvedMethod, check_method, check_step_targets
from capa.config.check_profile import CheckedProfile, check_profile
from capa.config.check_safety import check_alarm_names, check_safety
from capa.config.experiment import ExperimentConfig, ProfileRef
from capa.config.loader import ConfigFileError, Document, LoadStack, load_document, resolve_path
from capa.config.method import is_method_path
from capa.config.problems import Collector, Section, did_you_mean
from capa.config.providers import provider_hint
from capa.errors import ConfigError
from capa.problems import Problem, Severity

if TYPE_CHECKING:
    from capa.components.model import ConfigModel
    from capa.plugins.host import PluginHost

__all__ = [
    "ConfigInvalid",
    "FileKind",
    "Report",
    "detect_kind",
    "load_experiment",
    "validate_experiment",
    "validate_file",
    "validate_hardware",
    "validate_method",
]


class FileKind(enum.StrEnum):
    """What a configuration file describes."""

    EXPERIMENT = "experiment"
    HARDWARE = "hardware"
    METHOD = "method"


@dataclass
class Report:
    """The outcome of validating one file (and the files it refers to).

    Attributes:
        path: the file validated.
        kind: experiment, hardware or method.
        problems: every finding, in layer order.
        experiment: the experiment model, when the file is one and its schema held.
        hardware: the resolved hardware (own file, referenced or inline), if it validated.
        method: the resolved method, if there is one and it validated.
        procedure_config: the procedure's parsed ``Config``.
        sink_configs: each extra sink's parsed ``Config``, in order.
        profile: the domain profile that was applied, with its findings, if any.
    """

    path: Path
    kind: FileKind
    problems: list[Problem] = field(default_factory=list)
    experiment: ExperimentConfig | None = None
    hardware: ResolvedHardware | None = None
    method: ResolvedMethod | None = None
    procedure_config: ConfigModel | None = None
    sink_configs: list[ConfigModel] = field(default_factory=list)
    profile: CheckedProfile | None = None

    @property
    def ok(self) -> bool:
        """No error-severity problem."""
        return not any(p.is_error for p in self.problems)

    def count(self, severity: Severity) -> int:
        """How many problems of ``severity``."""
        return sum(1 for p in self.problems if p.severity is severity)


class ConfigInvalid(ConfigError):
    """A configuration has error-severity problems (exit 2; nothing was written).

    Attributes:
        report: the full validation report; ``report.problems`` lists every finding.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        errors = [p for p in report.problems if p.is_error]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        super().__init__(f"{errors[0]}{more}" if errors else f"{report.path}: invalid")


def load_experiment(path: Path, host: PluginHost, *, live: bool = False) -> Report:
    """Validate an experiment for a run; raise :class:`ConfigInvalid` on any error.

    The returned report holds everything a run needs: the experiment model, the resolved
    devices (adapter class, parsed params, fields, resource ids), channels, the method's
    step instances, the procedure's and sinks' parsed configs.
    """
    report = validate_experiment(path, host, live=live)
    if not report.ok:
        raise ConfigInvalid(report)
    return report


def detect_kind(path: Path, data: Mapping[str, Any] | None = None) -> FileKind:
    """Method by suffix (or a top-level ``steps``); hardware if it looks like a rig."""
    if is_method_path(path.name):
        return FileKind.METHOD
    if data is not None and "steps" in data and "procedure" not in data and "devices" not in data:
        return FileKind.METHOD
    if data is not None and "procedure" not in data and ("devices" in data or "channels" in data):
        return FileKind.HARDWARE
    if path.suffix.lower() == ".toml" and data is not None and "procedure" not in data:
        return FileKind.HARDWARE
    return FileKind.EXPERIMENT


def _load(path: Path, col: Collector, stack: LoadStack | None = None) -> Document | None:
    try:
        if stack is None:
            return load_document(path)
        with stack.entering(path):
            return load_document(path)
    except ConfigFileError as exc:
        col.problems.append(exc.problem)
        return None


def validate_file(path: Path, host: PluginHost, *, live: bool = False) -> Report:
    """Validate any configuration file, telling its kind from suffix and content."""
    col = Collector()
    doc = _load(Path(path), col)
    if doc is None:
        kind = FileKind.METHOD if is_method_path(Path(path).name) else FileKind.EXPERIMENT
        return Report(Path(path), kind, col.problems)
    kind = detect_kind(doc.path, doc.data)
    if kind is FileKind.METHOD:
        return _method(doc, host, col)
    if kind is FileKind.HARDWARE:
        return _hardware(doc, host, col, live=live)
    return _experiment(doc, host, col, live=live)


def validate_hardware(path: Path, host: PluginHost, *, live: bool = False) -> Report:
    """Validate a hardware file (``live`` adds each device's read-only handshake)."""
    col = Collector()
    doc = _load(Path(path), col)
    if doc is None:
        return Report(Path(path), FileKind.HARDWARE, col.problems)
    return _hardware(doc, host, col, live=live)


def validate_method(path: Path, host: PluginHost, *, hardware: Path | None = None) -> Report:
    """Validate a method file; with ``hardware``, check step targets against that rig."""
    col = Collector()
    path = Path(path)
    if not is_method_path(path.name):
        col.problems.append(
            Problem(
                Severity.ERROR,
                "file.unsupported_suffix",
                "",
                "method files end in .method.toml or .method.yaml",
                str(path),
            )
        )
        return Report(path, FileKind.METHOD, col.problems)
    doc = _load(path, col)
    if doc is None:
        return Report(path, FileKind.METHOD, col.problems)
    report = _method(doc, host, col)
    if hardware is not None and report.method is not None:
        hw_doc = _load(Path(hardware), col)
        hw = check_hardware(hw_doc.data, Section(hw_doc), host, col) if hw_doc else None
        if hw is not None and not col.has_errors:
            check_step_targets(report.method, hw, col)
        report.hardware = hw
    report.problems = col.problems
    return report


def validate_experiment(
    path: Path, host: PluginHost, *, live: bool = False, profile: str | None = None
) -> Report:
    """Validate an experiment file and the hardware and method files it refers to.

    ``profile`` applies that domain profile (with default options) instead of the one the
    experiment names, as ``capa profile validate --profile ID`` does.
    """
    col = Collector()
    stack = LoadStack()
    doc = _load(Path(path), col, stack)
    if doc is None:
        return Report(Path(path), FileKind.EXPERIMENT, col.problems)
    looks_like = _other_kind(doc.data)
    if looks_like is not None:
        command = f"capa {looks_like.value} validate"
        col.error(
            Section(doc),
            "file.wrong_kind",
            (),
            f"this is a {looks_like.value} file, not an experiment; check it with `{command}`",
        )
        return Report(doc.path, FileKind.EXPERIMENT, col.problems)
    with stack.entering(doc.path):
        return _experiment(doc, host, col, live=live, stack=stack, profile=profile)


def _other_kind(data: Mapping[str, Any]) -> FileKind | None:
    """A hardware or method file handed over as an experiment (no experiment keys)."""
    if "procedure" in data or "hardware" in data:
        return None
    if "devices" in data or "channels" in data:
        return FileKind.HARDWARE
    if "steps" in data:
        return FileKind.METHOD
    return None


def _hardware(doc: Document, host: PluginHost, col: Collector, *, live: bool) -> Report:
    report = Report(doc.path, FileKind.HARDWARE)
    hw = check_hardware(doc.data, Section(doc), host, col)
    if hw is not None and not col.has_errors:
        check_resources(hw, col)
        if live and not col.has_errors:
            check_live(hw, col)
    report.hardware = hw
    report.problems = col.problems
    return report


def _method(doc: Document, host: PluginHost, col: Collector) -> Report:
    report = Report(doc.path, FileKind.METHOD)
    report.method = check_method(doc.data, Section(doc), host, col)
    report.problems = col.problems
    return report


def _experiment(
    doc: Document,
    host: PluginHost,
    col: Collector,
    *,
    live: bool,
    stack: LoadStack | None = None,
    profile: str | None = None,
) -> Report:
    stack = stack or LoadStack()
    report = Report(doc.path, FileKind.EXPERIMENT)
    root = Section(doc)
    exp = col.validate(ExperimentConfig, doc.data, root)
    report.experiment = exp
    # Referenced files are checked even when the experiment's own schema failed, so one
    # run reports the problems of every file (inline tables were covered by the schema).
    hw_ref = exp.hardware if exp is not None else _path_ref(doc.data, "hardware")
    if hw_ref is not None:
        hw_section = _included(hw_ref, "hardware", root, col, stack)
        if hw_section is not None:
            report.hardware = check_hardware(_table(hw_section), hw_section, host, col)
    method_ref = exp.method if exp is not None else _path_ref(doc.data, "method")
    if method_ref is not None:
        m_section = _included(method_ref, "method", root, col, stack)
        if m_section is not None:
            report.method = check_method(_table(m_section), m_section, host, col)
    if exp is not None:
        report.procedure_config = _check_procedure(exp, report, root, host, col)
        report.sink_configs = _check_sinks(exp, root, host, col)
    if report.hardware is not None and not col.has_errors:
        if report.method is not None:
            check_step_targets(report.method, report.hardware, col)
        if exp is not None and (exp.alarms or exp.interlocks):
            check_safety(
                report.hardware, col, alarms=exp.alarms, interlocks=exp.interlocks, section=root
            )
            check_alarm_names(
                report.hardware.config.alarms,
                exp.alarms,
                col,
                rig_section=report.hardware.section,
                experiment_section=root,
            )
        check_resources(report.hardware, col)
        if live and not col.has_errors:
            check_live(report.hardware, col)
    if exp is not None and report.hardware is not None and not col.has_errors:
        # The profile layer reads a fully resolved rig; its findings would be noise on a
        # rig whose references are broken.
        if profile is not None:
            report.profile = check_profile(
                ProfileRef(id=profile),
                exp,
                report.hardware,
                report.method,
                root=root,
                host=host,
                col=col,
                ref_loc=(),
            )
        elif exp.profile is not None:
            report.profile = check_profile(
                exp.profile, exp, report.hardware, report.method, root=root, host=host, col=col
            )
    report.problems = col.problems
    return report


def _path_ref(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _table(section: Section) -> Any:
    data: Any = section.doc.data
    for part in section.prefix:
        data = data[part]
    return data


def _included(
    value: Any, key: str, root: Section, col: Collector, stack: LoadStack
) -> Section | None:
    """The section of a referenced file, or of the inline table."""
    if not isinstance(value, str):
        return root.at(key)
    try:
        target = resolve_path(value, root.doc.path)
        with stack.entering(target):
            doc = load_document(target)
    except ConfigFileError as exc:
        problem = exc.problem
        if problem.code in _REFERENCE_CODES:
            # About the reference itself: point at the key that names the file.
            shown = value if value.isprintable() else repr(value)
            col.error(root, problem.code, (key,), f"{shown}: {problem.message}")
        else:
            col.problems.append(problem)  # about the file's content: keep its line
        return None
    return Section(doc)


FREE_RUN_ID = "capa.builtin.free_run"
"""Core's own procedure that records without a method (the hint when one is missing)."""

_REFERENCE_CODES = frozenset(
    {
        "file.not_found",
        "file.cycle",
        "file.is_directory",
        "file.unsupported_suffix",
        "file.bad_path",
        "file.symlink_loop",
        "file.not_regular",
        "file.unreadable",
        "file.too_large",
    }
)


def _check_procedure(
    exp: ExperimentConfig, report: Report, root: Section, host: PluginHost, col: Collector
) -> ConfigModel | None:
    ref = exp.procedure
    cls = host.procedures.get(ref.id)
    if cls is None:
        available = host.procedures.ids()
        col.error(
            root,
            "plugin.procedure_unknown",
            ("procedure", "id"),
            f"unknown procedure {ref.id!r}{did_you_mean(ref.id, available)}"
            f"{provider_hint('procedure', ref.id)}; "
            f"available: {', '.join(available) or 'none installed'}",
        )
        return None
    config: ConfigModel | None = col.validate(
        cls.Config, ref.config, root.at("procedure", "config"), plugin=f"procedure {ref.id!r}"
    )
    if ref.version is not None:
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        try:
            satisfied = Version(cls.version) in SpecifierSet(ref.version)
        except InvalidVersion:
            satisfied = False
        if not satisfied:
            col.error(
                root,
                "procedure.version_mismatch",
                ("procedure", "version"),
                f"{ref.id} is version {cls.version or 'unknown'}, which does not satisfy "
                f"{ref.version!r}",
            )
    if cls.uses_method and exp.method is None:
        col.error(
            root,
            "procedure.method_required",
            ("method",),
            f"{ref.id} needs a method (`method:` in the experiment); to record without one, "
            f"use {FREE_RUN_ID}",
        )
    elif not cls.uses_method and exp.method is not None:
        col.warning(root, "procedure.method_unused", ("method",), f"{ref.id} ignores the method")
    hw = report.hardware
    if hw is not None:
        for name in cls.required_channels:
            if not hw.has_channel(name):
                col.error(
                    root,
                    "procedure.channel_missing",
                    ("procedure", "id"),
                    f"{ref.id} needs a channel named {name!r}",
                )
        offered = {c for d in hw.devices.values() for c in d.cls.capabilities}
        for capability in sorted(cls.required_capabilities - offered):
            col.error(
                root,
                "procedure.capability_missing",
                ("procedure", "id"),
                f"{ref.id} needs a device with capability {capability!r}",
            )
    return config


def _check_sinks(
    exp: ExperimentConfig, root: Section, host: PluginHost, col: Collector
) -> list[ConfigModel]:
    configs: list[ConfigModel] = []
    for i, ref in enumerate(exp.sinks):
        if ref.id == "capa.bundle":
            col.error(
                root,
                "plugin.sink_builtin",
                ("sinks", i, "id"),
                "capa.bundle (the run bundle) is always on; list only extra sinks here",
            )
            continue
        cls = host.sinks.get(ref.id)
        if cls is None:
            available = host.sinks.ids()
            col.error(
                root,
                "plugin.sink_unknown",
                ("sinks", i, "id"),
                f"unknown sink {ref.id!r}{did_you_mean(ref.id, available)}; "
                f"available: {', '.join(available) or 'none installed'}",
            )
            continue
        config = col.validate(
            cls.Config, ref.config, root.at("sinks", i, "config"), plugin=f"sink {ref.id!r}"
        )
        if config is not None:
            configs.append(config)
    return configs
