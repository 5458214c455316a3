"""Build the simulated sample world: seeded random dewars, or pins described in a sample sheet.

``build_world(seed=1, pucks=24, pins_per_puck=16)`` fills a dewar reproducibly: each
pin draws from its own generator seeded by ``(seed, puck, pin)``, so a pin's content does
not change when the dewar grows. Each present pin holds a nylon loop (100-400 um,
elliptical, random plane angle, centre offset from the pin axis by up to 0.3 mm so the
loop must be centred) with 0..n crystals of one protein from :data:`PROTEINS`; the mix of
empty, weak, multi-crystal, icy and missing pins is set by :class:`WorldMix`.

Sample sheet (``sheet=path`` or :func:`world_from_sheet`): a TOML or JSON file (or a dict)
describing pins explicitly; every field but ``location`` may be left out::

    fill = "missing"            # unlisted pins: "missing" (default) | "random" | "empty"

    [[pins]]
    location = "1:1"            # puck:pin, inside the dewar
    name = "lyso-1"             # default "<protein>_<puck>_<pin>"
    barcode = "DM0101"          # default none
    present = true              # false: no pin at this place
    faults = ["load_fails"]     # FAULT_KINDS that fire for this pin at every chance
    protein = "lysozyme"        # default protein of the pin's crystals

    [pins.loop]                 # omit for the default loop; `loop = false`: pin without loop
    centre_mm = [0.0, 0.1, 0.0] # sample frame (a along the omega axis, b, c); default origin
    size_um = [300.0, 250.0]    # (along the axis, across); default (300, 250)
    plane_angle_deg = 0.0       # 0: loop plane holds b, i.e. seen face-on at omega 0
    fibre_um = 15.0
    ice = 0.0                   # ice-ring strength 0..1
    salt = false

    [[pins.crystals]]           # none: an empty loop
    position_mm = [0.0, 0.1, 0.0]
    size_um = [50.0, 50.0, 50.0]
    shape = "ellipsoid"         # or "box"
    orientation = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]   # crystal axes -> sample frame
    strength = 1.0
    resolution_limit_a = 2.0
    mosaicity_deg = 0.2
    protein = "lysozyme"        # sets cell and space_group unless those are given
    cell = [79.1, 79.1, 37.9, 90.0, 90.0, 90.0]
    space_group = "P43212"

The JSON form is the same structure: ``{"fill": "missing", "pins": [{"location": "1:1",
"loop": {...}, "crystals": [{...}]}]}``; ``"loop": null`` also means no loop. Unknown keys
are refused (a typo must not silently become a default).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from bes.hal.sample_changer import Location
from simulators.faults import FAULT_KINDS
from simulators.world import Crystal, Loop, Pin, SampleWorld


@dataclass(frozen=True)
class Protein:
    name: str
    space_group: str
    cell: tuple[float, float, float, float, float, float]


PROTEINS: dict[str, Protein] = {
    p.name: p
    for p in (
        Protein("lysozyme", "P43212", (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)),
        Protein("thaumatin", "P41212", (58.0, 58.0, 151.0, 90.0, 90.0, 90.0)),
        Protein("insulin", "I213", (78.0, 78.0, 78.0, 90.0, 90.0, 90.0)),
        Protein("trypsin", "P212121", (54.8, 58.6, 67.5, 90.0, 90.0, 90.0)),
        Protein("thermolysin", "P6122", (93.0, 93.0, 130.0, 90.0, 90.0, 120.0)),
    )
}
"""Common test proteins: space group and unit cell (Angstrom, degrees)."""

DEFAULT_LOOP_SIZE_UM = (300.0, 250.0)
DEFAULT_CRYSTAL_SIZE_UM = (50.0, 50.0, 50.0)
SHEET_FILLS = ("missing", "random", "empty")


@dataclass(frozen=True)
class WorldMix:
    """Fractions of pins (or crystals, for ``weak``) of each kind in a random dewar."""

    empty_fraction: float = 0.1
    """Present pins whose loop holds no crystal."""
    weak_fraction: float = 0.15
    """Crystals that diffract weakly and to low resolution."""
    multi_fraction: float = 0.1
    """Present pins with 2-4 crystals in the loop."""
    ice_fraction: float = 0.1
    """Loops with ice rings."""
    salt_fraction: float = 0.03
    """Loops with salt crystals."""
    missing_fraction: float = 0.02
    """Dewar places without a pin."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"world mix {f.name} must be within 0..1, got {value!r}")
        if self.empty_fraction + self.multi_fraction > 1.0:
            raise ValueError(
                f"world mix: empty_fraction + multi_fraction = "
                f"{self.empty_fraction + self.multi_fraction:g} exceeds 1; lower one of them"
            )

    @classmethod
    def from_keywords(cls, mix: Mapping[str, Any]) -> WorldMix:
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(mix) - set(known))
        if unknown:
            raise ValueError(f"unknown world mix option(s) {unknown}; known: {', '.join(known)}")
        return cls(**{k: float(v) for k, v in mix.items()})


def build_world(
    seed: int = 1,
    pucks: int = 24,
    pins_per_puck: int = 16,
    sheet: str | Path | Mapping[str, Any] | None = None,
    **mix: float,
) -> SampleWorld:
    """Config factory: a seeded random dewar, or the pins of ``sheet`` when one is given."""
    if sheet is not None:
        return world_from_sheet(sheet, seed=seed, pucks=pucks, pins_per_puck=pins_per_puck, **mix)
    _check_dewar(pucks, pins_per_puck)
    world_mix = WorldMix.from_keywords(mix)
    pins = {loc: random_pin(loc, seed, world_mix) for loc in _dewar_locations(pucks, pins_per_puck)}
    return SampleWorld(pins=pins, seed=seed)


def world_from_sheet(
    sheet: str | Path | Mapping[str, Any],
    *,
    seed: int = 1,
    pucks: int = 24,
    pins_per_puck: int = 16,
    **mix: float,
) -> SampleWorld:
    """The world a sample sheet (path to TOML/JSON, or its parsed dict) describes."""
    source = str(sheet) if isinstance(sheet, str | Path) else "<sample sheet>"
    data = _read_sheet(sheet) if isinstance(sheet, str | Path) else dict(sheet)
    _check_keys(data, {"fill", "pins"}, source)
    _check_dewar(pucks, pins_per_puck)
    fill = data.get("fill", "missing")
    if fill not in SHEET_FILLS:
        raise ValueError(f"{source}: unknown fill {fill!r}; known: {', '.join(SHEET_FILLS)}")
    world_mix = WorldMix.from_keywords(mix)
    pins: dict[Location, Pin] = {}
    for loc in _dewar_locations(pucks, pins_per_puck):
        if fill == "random":
            pins[loc] = random_pin(loc, seed, world_mix)
        elif fill == "empty":
            pins[loc] = Pin(location=loc, loop=_default_loop(), name=f"empty_{loc.puck}_{loc.pin}")
        else:
            pins[loc] = Pin(location=loc, present=False)
    entries = data.get("pins", [])
    if not isinstance(entries, list):
        raise ValueError(f"{source}: 'pins' must be a list of pin entries")
    for index, entry in enumerate(entries):
        pin = _pin_from_entry(entry, f"{source} pins[{index}]")
        if pin.location not in pins:
            raise ValueError(
                f"{source} pins[{index}]: location {pin.location} is outside the dewar "
                f"({pucks} pucks x {pins_per_puck} pins)"
            )
        pins[pin.location] = pin
    return SampleWorld(pins=pins, seed=seed)


def random_pin(location: Location, seed: int, mix: WorldMix) -> Pin:
    """One pin drawn from a generator of its own, seeded by (seed, puck, pin)."""
    rng = np.random.default_rng([seed, location.puck, location.pin])
    if rng.random() < mix.missing_fraction:
        return Pin(location=location, present=False)
    protein = PROTEINS[str(rng.choice(list(PROTEINS)))]
    loop = _random_loop(rng, mix)
    kind = rng.random()
    if kind < mix.empty_fraction:
        n_crystals = 0
    elif kind < mix.empty_fraction + mix.multi_fraction:
        n_crystals = int(rng.integers(2, 5))
    else:
        n_crystals = 1
    crystals = [_random_crystal(rng, loop, protein, mix) for _ in range(n_crystals)]
    return Pin(
        location=location,
        loop=loop,
        crystals=crystals,
        name=f"{protein.name}_{location.puck:02d}_{location.pin:02d}",
        barcode=f"DM{int(rng.integers(16**6)):06X}",
    )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3x3 rotation matrix (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def loop_axes(loop: Loop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (sample frame) along the loop length, across it in its plane, and normal."""
    theta = np.deg2rad(loop.plane_angle_deg)
    along = np.array([1.0, 0.0, 0.0])
    across = np.array([0.0, np.cos(theta), np.sin(theta)])
    normal = np.array([0.0, -np.sin(theta), np.cos(theta)])
    return along, across, normal


def _random_loop(rng: np.random.Generator, mix: WorldMix) -> Loop:
    length_um = float(rng.uniform(100.0, 400.0))
    width_um = length_um * float(rng.uniform(0.6, 1.0))
    centre = (
        float(rng.uniform(-0.15, 0.15)),
        float(rng.uniform(-0.3, 0.3)),
        float(rng.uniform(-0.3, 0.3)),
    )
    return Loop(
        centre_mm=centre,
        size_um=(length_um, width_um),
        plane_angle_deg=float(rng.uniform(0.0, 180.0)),
        fibre_um=float(rng.uniform(10.0, 20.0)),
        ice=float(rng.uniform(0.2, 1.0)) if rng.random() < mix.ice_fraction else 0.0,
        salt=bool(rng.random() < mix.salt_fraction),
    )


def _random_crystal(
    rng: np.random.Generator, loop: Loop, protein: Protein, mix: WorldMix
) -> Crystal:
    length_um, width_um = loop.size_um
    largest_um = min(150.0, 0.7 * min(length_um, width_um))
    size_um = float(np.exp(rng.uniform(np.log(10.0), np.log(max(largest_um, 10.0)))))
    extents = (
        size_um,
        size_um * float(rng.uniform(0.4, 1.0)),
        size_um * float(rng.uniform(0.2, 0.8)),
    )
    # A point of the loop's film, far enough from the rim for the crystal to fit.
    along, across, normal = loop_axes(loop)
    radius = float(np.sqrt(rng.random())) * max(0.0, 0.8 - size_um / min(length_um, width_um))
    phase = float(rng.uniform(0.0, 2.0 * np.pi))
    depth_mm = float(rng.uniform(-0.01, 0.01))
    position = (
        np.asarray(loop.centre_mm)
        + radius * np.cos(phase) * length_um * 5e-4 * along
        + radius * np.sin(phase) * width_um * 5e-4 * across
        + depth_mm * normal
    )
    weak = rng.random() < mix.weak_fraction
    return Crystal(
        position_mm=(float(position[0]), float(position[1]), float(position[2])),
        size_um=extents,
        orientation=random_rotation(rng),
        shape="box" if rng.random() < 0.5 else "ellipsoid",
        strength=float(rng.uniform(0.02, 0.15)) if weak else float(np.exp(rng.normal(0.0, 0.5))),
        resolution_limit_a=float(rng.uniform(2.8, 4.0) if weak else rng.uniform(1.2, 3.0)),
        mosaicity_deg=float(np.exp(rng.uniform(np.log(0.05), np.log(1.0)))),
        cell=protein.cell,
        space_group=protein.space_group,
    )


def _default_loop() -> Loop:
    return Loop(centre_mm=(0.0, 0.0, 0.0), size_um=DEFAULT_LOOP_SIZE_UM)


def _dewar_locations(pucks: int, pins_per_puck: int) -> list[Location]:
    return [Location(p, q) for p in range(1, pucks + 1) for q in range(1, pins_per_puck + 1)]


def _check_dewar(pucks: int, pins_per_puck: int) -> None:
    if pucks < 1 or pins_per_puck < 1:
        raise ValueError(
            f"a dewar needs at least one puck and one pin; got {pucks} pucks x {pins_per_puck} pins"
        )


def _read_sheet(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"sample sheet {path} does not exist") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ValueError(f"sample sheet {path}: unknown format {suffix!r}; use .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"sample sheet {path} cannot be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"sample sheet {path}: expected a table/object at the top level")
    return data


def _check_keys(entry: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")


_PIN_KEYS = {"location", "name", "barcode", "present", "faults", "protein", "loop", "crystals"}
_LOOP_KEYS = {"centre_mm", "size_um", "plane_angle_deg", "fibre_um", "ice", "salt"}
_CRYSTAL_KEYS = {
    "position_mm",
    "size_um",
    "shape",
    "orientation",
    "strength",
    "resolution_limit_a",
    "mosaicity_deg",
    "protein",
    "cell",
    "space_group",
}


def _pin_from_entry(entry: Any, where: str) -> Pin:
    if not isinstance(entry, Mapping) or "location" not in entry:
        raise ValueError(f"{where}: a pin entry is a table with at least a 'location' ('puck:pin')")
    _check_keys(entry, _PIN_KEYS, where)
    location = Location.parse(str(entry["location"]))
    where = f"{where} (pin {location})"
    faults = {str(k) for k in entry.get("faults", [])}
    for kind in sorted(faults - set(FAULT_KINDS)):
        raise ValueError(f"{where}: unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
    protein = _protein(entry.get("protein", "lysozyme"), where)
    present = bool(entry.get("present", True))
    loop_entry = entry.get("loop", {})
    loop = None
    if present and loop_entry not in (None, False):
        loop = _loop_from_entry(loop_entry, f"{where} loop")
    crystals = [
        _crystal_from_entry(c, protein, f"{where} crystals[{i}]")
        for i, c in enumerate(entry.get("crystals", []) if present else [])
    ]
    return Pin(
        location=location,
        present=present,
        loop=loop,
        crystals=crystals,
        name=str(entry.get("name", f"{protein.name}_{location.puck:02d}_{location.pin:02d}")),
        barcode=None if entry.get("barcode") is None else str(entry["barcode"]),
        faults=faults,
    )


def _loop_from_entry(entry: Any, where: str) -> Loop:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a table of loop fields or false, got {entry!r}")
    _check_keys(entry, _LOOP_KEYS, where)
    ice = float(entry.get("ice", 0.0))
    if not 0.0 <= ice <= 1.0:
        raise ValueError(f"{where}: ice must be within 0..1, got {ice!r}")
    return Loop(
        centre_mm=_vector(entry.get("centre_mm", (0.0, 0.0, 0.0)), 3, where, "centre_mm"),
        size_um=_vector(entry.get("size_um", DEFAULT_LOOP_SIZE_UM), 2, where, "size_um", True),
        plane_angle_deg=float(entry.get("plane_angle_deg", 0.0)),
        fibre_um=float(entry.get("fibre_um", 15.0)),
        ice=ice,
        salt=bool(entry.get("salt", False)),
    )


def _crystal_from_entry(entry: Any, pin_protein: Protein, where: str) -> Crystal:
    if not isinstance(entry, Mapping) or "position_mm" not in entry:
        raise ValueError(f"{where}: a crystal entry needs at least 'position_mm' [a, b, c]")
    _check_keys(entry, _CRYSTAL_KEYS, where)
    protein = _protein(entry["protein"], where) if "protein" in entry else pin_protein
    orientation = np.asarray(entry.get("orientation", np.eye(3)), dtype=float)
    if orientation.shape != (3, 3) or not np.allclose(orientation @ orientation.T, np.eye(3)):
        raise ValueError(f"{where}: orientation must be a 3x3 rotation matrix, got {orientation}")
    shape = str(entry.get("shape", "ellipsoid"))
    if shape not in ("ellipsoid", "box"):
        raise ValueError(f"{where}: unknown crystal shape {shape!r}; use 'ellipsoid' or 'box'")
    return Crystal(
        position_mm=_vector(entry["position_mm"], 3, where, "position_mm"),
        size_um=_vector(entry.get("size_um", DEFAULT_CRYSTAL_SIZE_UM), 3, where, "size_um", True),
        orientation=orientation,
        shape=shape,
        strength=float(entry.get("strength", 1.0)),
        resolution_limit_a=float(entry.get("resolution_limit_a", 2.0)),
        mosaicity_deg=float(entry.get("mosaicity_deg", 0.2)),
        cell=_vector(entry.get("cell", protein.cell), 6, where, "cell"),
        space_group=str(entry.get("space_group", protein.space_group)),
    )


def _protein(name: Any, where: str) -> Protein:
    if name not in PROTEINS:
        raise ValueError(f"{where}: unknown protein {name!r}; known: {', '.join(PROTEINS)}")
    return PROTEINS[name]


def _vector(value: Any, n: int, where: str, key: str, positive: bool = False) -> Any:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != n or (positive and min(numbers) <= 0):
        kind = "positive numbers" if positive else "numbers"
        raise ValueError(f"{where}: {key} needs {n} {kind}, got {value!r}")
    return numbers
