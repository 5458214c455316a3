"""Where an MX workflow writes its files: directories confined to one data area and run
numbers that never overwrite an earlier acquisition."""

from __future__ import annotations

import re
import string
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KINDS = ("RAW_DATA", "PROCESSED_DATA")
"""The kinds of data directory a layout gives."""

TEMPLATE_FIELDS = ("proposal", "beamline", "date", "kind", "sample")
"""The fields a directory template may use."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.+-]")
_DATE = re.compile(r"[0-9]{8}")
_RESERVE_LOCK = threading.Lock()
"""Serialises reservations made by the threads of this process."""


def safe_name(text: str) -> str:
    """``text`` as a valid name: each disallowed character becomes "-" and leading characters
    other than a letter or digit are dropped, so a location "1:3" gives "1-3"."""
    name = _NOT_NAME_CHAR.sub("-", text).lstrip("_.+-")
    if not name:
        raise ValueError(f"safe_name: {text!r} has no letter or digit to make a name from")
    return name


def _check_name(parameter: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{parameter} {value!r} is not a valid name: use letters, digits and _ . + -, "
            f"starting with a letter or digit (safe_name() turns e.g. '1:3' into '1-3')"
        )
    return value


def _relative_parts(parameter: str, value: str, shown: str | None = None) -> list[str]:
    """The components of the relative path ``value``; refuse absolute paths, '..' and
    components that are not valid names."""
    shown = value if shown is None else shown
    if value.startswith("/"):
        raise ValueError(f"{parameter} {shown!r} must be a relative path, not an absolute one")
    parts = value.split("/")
    for part in parts:
        if part in ("..", "."):
            raise ValueError(f"{parameter} {shown!r} must not contain {part!r}")
        if not part:
            raise ValueError(f"{parameter} {shown!r} has an empty path component")
        _check_name(f"{parameter} {shown!r}: component", part)
    return parts


def _confine(root: Path, path: Path) -> None:
    """Refuse ``path`` if, with its symbolic links followed, it is not inside ``root``."""
    area = root.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(area):
        raise ValueError(
            f"{path} leaves the data area {area}: it resolves to {resolved}; "
            f"remove the symbolic link or choose another root"
        )


def _check_run(parameter: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{parameter} must be >= 1, got {value}")


def _marker(prefix: str, run: int) -> str:
    return f".{prefix}_{run}.reserved"


def _runs_in(directory: Path, prefix: str) -> set[int]:
    """The runs of ``prefix`` that entries of ``directory`` use or reserve."""
    name = re.escape(prefix)
    used = re.compile(rf"{name}_([0-9]+)(?:[_.].*)?|\.{name}_([0-9]+)\.reserved", re.DOTALL)
    runs = set()
    for entry in directory.iterdir():
        match = used.fullmatch(entry.name)
        if match:
            runs.add(int(match.group(1) or match.group(2)))
    return runs


@dataclass(frozen=True)
class Target:
    """A reserved place for one acquisition: files ``<directory>/<prefix>_<run>_...``."""

    directory: Path
    prefix: str
    run: int
    moved_from: int | None = None
    """The run number asked for when it was already taken, else None."""

    def file_template(self, suffix: str = "") -> str:
        """The file name pattern ``<prefix>_<run>_####<suffix>``, where ``####`` stands for
        the 4-digit frame number, e.g. ``mesh_3_####.cbf`` for ``mesh_3_0001.cbf``, ..."""
        return f"{self.prefix}_{self.run}_####{suffix}"


@dataclass(frozen=True)
class DataLayout:
    """The directory tree of one session under ``root``, which nothing may leave."""

    root: Path
    proposal: str = "mx0000"
    beamline: str = "SIM-MX1"
    date: str | None = None
    """YYYYMMDD; None means today's UTC date, fixed when the layout is made."""
    template: str = "{proposal}/{beamline}/{date}/{kind}/{sample}"
    """Directory under ``root``, with fields from TEMPLATE_FIELDS."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        _check_name("proposal", self.proposal)
        _check_name("beamline", self.beamline)
        if self.date is None:
            object.__setattr__(self, "date", datetime.now(UTC).strftime("%Y%m%d"))
        else:
            _check_date(self.date)
        _check_template(self.template)
        # A trial fill catches literal parts of the template that cannot be path components.
        self._relative("sample", "RAW_DATA")

    def directory(self, sample: str, kind: str = "RAW_DATA", subdir: str = "") -> Path:
        """``<root>/<template filled>[/<subdir>]``, created if missing; refused if a symbolic
        link takes it out of the data area."""
        path = self.root / self._relative(sample, kind)
        if subdir:
            path = path.joinpath(*_relative_parts("subdir", subdir))
        _confine(self.root, path)
        path.mkdir(parents=True, exist_ok=True)
        _confine(self.root, path)  # a link swapped in while the directories were made
        return path

    def next_run(self, directory: Path, prefix: str, start: int = 1) -> int:
        """The smallest run >= ``start`` with no entry ``<prefix>_<run>``, ``<prefix>_<run>_*``
        or ``<prefix>_<run>.*`` (nor a reservation marker) in ``directory``."""
        _check_name("prefix", prefix)
        _check_run("start", start)
        directory = Path(directory)
        _confine(self.root, directory)
        taken = _runs_in(directory, prefix) if directory.is_dir() else set()
        run = start
        while run in taken:
            run += 1
        return run

    def reserve(
        self,
        sample: str,
        prefix: str,
        kind: str = "RAW_DATA",
        subdir: str = "",
        run: int | None = None,
    ) -> Target:
        """The directory and the next free run number, held by an empty marker file
        ``.<prefix>_<run>.reserved``; a taken ``run`` moves to the next free one after it."""
        _check_name("prefix", prefix)
        if run is not None:
            _check_run("run", run)
        with _RESERVE_LOCK:
            directory = self.directory(sample, kind, subdir)
            candidate = self.next_run(directory, prefix, 1 if run is None else run)
            while True:
                try:
                    # Exclusive creation: another process may have taken the same run meanwhile.
                    (directory / _marker(prefix, candidate)).open("x").close()
                    break
                except FileExistsError:
                    candidate = self.next_run(directory, prefix, candidate + 1)
        moved_from = run if run is not None and run != candidate else None
        return Target(directory=directory, prefix=prefix, run=candidate, moved_from=moved_from)

    def _relative(self, sample: str, kind: str) -> str:
        _check_name("sample", sample)
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not known; known: {', '.join(KINDS)}")
        filled = self.template.format(
            proposal=self.proposal, beamline=self.beamline, date=self.date, kind=kind, sample=sample
        )
        _relative_parts("template", filled, shown=f"{self.template} -> {filled}")
        return filled


def _check_date(date: str) -> None:
    valid = isinstance(date, str) and _DATE.fullmatch(date) is not None
    if valid:
        try:
            datetime.strptime(date, "%Y%m%d")
        except ValueError:
            valid = False
    if not valid:
        raise ValueError(f"date {date!r} is not a date YYYYMMDD (8 digits, e.g. '20250131')")


def _check_template(template: str) -> None:
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as error:
        raise ValueError(f"template {template!r} is not a valid format string: {error}") from None
    for field in fields:
        if field not in TEMPLATE_FIELDS:
            raise ValueError(
                f"template {template!r} uses unknown field {{{field}}}; "
                f"known: {', '.join(TEMPLATE_FIELDS)}"
            )


def layout_from_parameters(
    root: Path | str,
    proposal: str | None = None,
    beamline: str | None = None,
    date: str | None = None,
    template: str | None = None,
) -> DataLayout:
    """A DataLayout from task parameters, taking the defaults for those given as None."""
    given = {"proposal": proposal, "beamline": beamline, "template": template}
    return DataLayout(
        Path(root), date=date, **{name: value for name, value in given.items() if value is not None}
    )
