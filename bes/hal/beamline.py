"""The Beamline container: every device a task may use, built from a config file.

A config file (TOML) names a factory for each component, entry-point style::

    [beamline]
    name = "SIM-MX1"

    [components.clock]
    factory = "simulators.clock:SimClock"     # or a name in entry-point group mxbes.devices
    mode = "instant"

    [components.goniometer]
    factory = "simulators.goniometer:SimGoniometer"
    clock = "@clock"                          # "@name" passes another component

Every other key is passed to the factory as a keyword argument. Components are
built in dependency order; the device roles below must be present. Nothing here
knows any implementation, so a real beamline is configured without touching tasks.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bes.hal.beam import Beam, Camera, Shutter
from bes.hal.clock import Clock
from bes.hal.detector import Detector
from bes.hal.goniometer import Goniometer
from bes.hal.sample_changer import SampleChanger

ENTRY_POINT_GROUP = "mxbes.devices"

DEVICE_ROLES: dict[str, type] = {
    "clock": Clock,
    "goniometer": Goniometer,
    "detector": Detector,
    "sample_changer": SampleChanger,
    "beam": Beam,
    "shutter": Shutter,
    "camera": Camera,
}
"""Role name -> protocol its component must satisfy."""


class BeamlineConfigError(ValueError):
    """The beamline config file is wrong; the message names the file, component and key."""


@dataclass
class Beamline:
    """The devices of one beamline. Tasks reach hardware only through these protocols."""

    name: str
    clock: Clock
    goniometer: Goniometer
    detector: Detector
    sample_changer: SampleChanger
    beam: Beam
    shutter: Shutter
    camera: Camera
    extras: dict[str, Any] = field(default_factory=dict)
    """Components that are not device roles (e.g. the simulator's world or fault plan)."""
    config_path: Path | None = None

    def devices(self) -> dict[str, Any]:
        """Role -> device, in the order of DEVICE_ROLES."""
        return {role: getattr(self, role) for role in DEVICE_ROLES}

    def stop(self) -> None:
        """Stop motion and acquisition now (abort): interrupt waits, stop motors and detector."""
        self.clock.interrupt()
        self.goniometer.stop()
        self.detector.stop()

    @classmethod
    def from_config(
        cls, path: str | Path, overrides: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Beamline:
        """Build from a TOML file; ``overrides``: component -> {key: value}, e.g. the clock mode."""
        path = Path(path)
        try:
            config = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BeamlineConfigError(f"beamline config {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise BeamlineConfigError(f"beamline config {path} is not valid TOML: {exc}") from None
        beamline = cls.from_dict(
            config, overrides=overrides, source=str(path), base_dir=path.parent
        )
        beamline.config_path = path
        return beamline

    @classmethod
    def from_dict(
        cls,
        config: Mapping[str, Any],
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        source: str = "<config>",
        base_dir: Path | None = None,
    ) -> Beamline:
        specs: dict[str, dict[str, Any]] = {
            name: dict(spec) for name, spec in dict(config.get("components", {})).items()
        }
        for name, values in (overrides or {}).items():
            if name not in specs:
                raise BeamlineConfigError(
                    f"{source}: override for unknown component {name!r}; known: {', '.join(specs)}"
                )
            specs[name].update(values)
        missing = [role for role in DEVICE_ROLES if role not in specs]
        if missing:
            raise BeamlineConfigError(
                f"{source}: no component for device role(s) {', '.join(missing)}"
            )
        built = _build_all(specs, source, base_dir)
        for role, protocol in DEVICE_ROLES.items():
            if not isinstance(built[role], protocol):
                raise BeamlineConfigError(
                    f"{source}: component {role!r} ({type(built[role]).__name__}) does not "
                    f"implement the {protocol.__name__} protocol"
                )
        name = str(config.get("beamline", {}).get("name", "beamline"))
        extras = {k: v for k, v in built.items() if k not in DEVICE_ROLES}
        return cls(name=name, extras=extras, **{role: built[role] for role in DEVICE_ROLES})


def resolve_factory(reference: str, source: str = "<config>") -> Any:
    """``"module:attribute"`` or an entry-point name in group ``mxbes.devices``."""
    if ":" not in reference:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == reference:
                return ep.load()
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise BeamlineConfigError(
            f"{source}: unknown factory {reference!r}; use 'module:attribute' or one of: "
            f"{', '.join(known) or '(none registered)'}"
        )
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BeamlineConfigError(
            f"{source}: cannot import {module_name!r} for {reference!r}: {exc}"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise BeamlineConfigError(f"{source}: {module_name!r} has no {attribute!r}") from None


def _build_all(
    specs: dict[str, dict[str, Any]], source: str, base_dir: Path | None
) -> dict[str, Any]:
    built: dict[str, Any] = {}
    building: list[str] = []

    def resolve(value: Any, owner: str) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            return build(value[1:], owner)
        if isinstance(value, str) and value.startswith("./") and base_dir is not None:
            return str((base_dir / value).resolve())
        if isinstance(value, list):
            return [resolve(v, owner) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v, owner) for k, v in value.items()}
        return value

    def build(name: str, wanted_by: str | None = None) -> Any:
        if name in built:
            return built[name]
        if name not in specs:
            by = f" (wanted by {wanted_by!r})" if wanted_by else ""
            raise BeamlineConfigError(f"{source}: unknown component {name!r}{by}")
        if name in building:
            cycle = " -> ".join([*building[building.index(name) :], name])
            raise BeamlineConfigError(
                f"{source}: components refer to each other in a cycle: {cycle}"
            )
        building.append(name)
        spec = dict(specs[name])
        reference = spec.pop("factory", None)
        if not isinstance(reference, str):
            raise BeamlineConfigError(f"{source}: component {name!r} has no 'factory' string")
        factory = resolve_factory(reference, source)
        kwargs = {key: resolve(value, name) for key, value in spec.items()}
        try:
            built[name] = factory(**kwargs)
        except TypeError as exc:
            raise BeamlineConfigError(
                f"{source}: component {name!r} ({reference}): {exc}"
            ) from None
        building.pop()
        return built[name]

    for name in specs:
        build(name)
    return built
