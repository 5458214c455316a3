"""What MX workflow tasks write to the LIMS, as ISPyB records, through ``lims.client``.

Tasks call :class:`LimsWriter` with plain values (``transmission=0.25``, ``beam_size_um``,
``start=datetime(..., tzinfo=UTC)``) and never build ``lims.client.records`` themselves;
this module is the one place where results become ISPyB records and units become ISPyB's
(percent for transmission and completeness, mm for beam sizes)::

    lims = LimsWriter.for_sample(client, Visit("mx1234", 1), "1:5", beamline_name="SIM-MX")
    lims.start_workflow("MXPressE", "MXPressE lyso-1")
    group = lims.start_group("Mesh", start=now)
    mesh = lims.add_collection(group, ScanRecord(start=now, n_images=400, transmission=0.1))
    lims.add_quality_indicators(mesh, rows)

The LIMS is a record of the experiment, not a reason to stop it: without a client (or a
visit) every method does nothing, and a refusal by the LIMS (:class:`LimsError`) is logged
and kept in :attr:`LimsWriter.errors`, never raised. A LIMS that is down is the client's
business: writes queue in its outbox and handles get their ids on replay. So is a refused
token (401/403): it is logged and kept in the errors too, but the client keeps the writes
queued and the writer goes on with their handles, so the records that depend on them queue
as well and ``bes lims flush`` with the right token stores the whole tree. A bad value given
by a task (an unknown experiment type, a naive datetime, a transmission of 25 meant as
percent) is a bug and raises ValueError.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from lims.client import records as r
from lims.client.client import LimsAuthError, LimsClient, LimsError
from lims.client.handles import Handle, Ref, Visit

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

PROCESSING_STATUS: dict[str, r.ProcessingStatus] = {
    "started": "RUNNING",
    "running": "RUNNING",
    "success": "SUCCESS",
    "failed": "FAILED",
}
"""Status of a processing summary (``bes.acquisition.processing``) -> AutoProcProgram's."""

ROTATION_AXIS = "Omega"
"""ISPyB's DataCollection.rotationAxis value for the omega axis."""


# -- what tasks hand over ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRecord:
    """A data collection as a task knows it; ``transmission`` is a fraction (0..1)."""

    start: datetime
    run_status: str = "Running"
    omega_start_deg: float | None = None
    oscillation_deg: float | None = None
    overlap_deg: float | None = None
    n_images: int | None = None
    start_image_number: int = 1
    exposure_s: float | None = None
    directory: str | None = None
    prefix: str | None = None
    run_number: int | None = None
    suffix: str | None = None
    """File type without the dot: ``h5`` or ``cbf``."""
    file_template: str | None = None
    wavelength_a: float | None = None
    resolution_a: float | None = None
    detector_distance_mm: float | None = None
    beam_centre_mm: tuple[float, float] | None = None
    """Beam centre on the detector (x, y) in mm, as ISPyB's xBeam / yBeam."""
    transmission: float | None = None
    beam_size_um: tuple[float, float] | None = None
    flux_ph_s: float | None = None
    comments: str | None = None


@dataclass(frozen=True)
class GridRecord:
    """The mesh of a mesh scan: step sizes (mm), steps, and the snapshot geometry."""

    dx_mm: float
    dy_mm: float
    steps_x: int
    steps_y: int
    mesh_angle_deg: float
    snaked: bool
    orientation: str = "horizontal"
    microns_per_pixel: tuple[float, float] | None = None
    snapshot_offset_px: tuple[float, float] | None = None


@dataclass(frozen=True)
class QualityRow:
    """Per-image scores of a mesh (names as in ``bes.analysis.spotfinder.FrameSpots``)."""

    image_number: int
    spot_total: int
    good_bragg_candidates: int
    resolution_a: float | None
    total_integrated_signal: float
    score: float


@dataclass(frozen=True)
class StrategyRecord:
    """A collection strategy; ``transmission`` and ``completeness`` are fractions (0..1)."""

    omega_start_deg: float
    total_range_deg: float
    oscillation_deg: float
    n_images: int
    exposure_s: float
    transmission: float
    resolution_a: float
    dose_mgy: float
    completeness: float | None = None
    multiplicity: float | None = None


@dataclass(frozen=True)
class ScreeningRecord:
    """What a characterisation found: indexing, cell, and the strategy if one was made."""

    program: str
    resolution_a: float | None
    mosaicity_deg: float | None
    n_spots: int
    indexing_success: bool
    strategy_success: bool
    space_group: str | None = None
    cell: tuple[float, ...] | None = None
    """a, b, c (A), alpha, beta, gamma (deg)."""
    comments: str | None = None
    strategy: StrategyRecord | None = None


# -- the writer --------------------------------------------------------------------------------


class LimsWriter:
    """Writes one sample's workflow to the LIMS of ``visit``; does nothing without a client.

    ``sample``: the BLSample the groups and robot actions are linked to (an id or a handle;
    :meth:`for_sample` finds or creates it). The workflow started by :meth:`start_workflow`
    is kept here too: groups, steps and workflow meshes are linked to it.
    """

    def __init__(
        self,
        client: LimsClient | None,
        visit: Visit | None = None,
        sample: Ref | None = None,
        beamline_name: str | None = None,
    ) -> None:
        self.client = client
        self.visit = visit
        self.sample = sample
        self.beamline_name = beamline_name
        self.location: str | None = None
        """The sample's ``puck:pin``: the default of :meth:`robot_action`."""
        self.barcode: str | None = None
        """The sample's barcode: the default of :meth:`robot_action`."""
        self.workflow: Handle | None = None
        self.errors: list[str] = []
        """What the LIMS refused (one line each), also logged as warnings."""

    @property
    def enabled(self) -> bool:
        """True when there is a LIMS to write to: a client and a visit."""
        return self.client is not None and self.visit is not None

    @classmethod
    def for_sample(
        cls,
        client: LimsClient | None,
        visit: Visit,
        location: str,
        *,
        sample_name: str | None = None,
        sample_lims_id: int | None = None,
        beamline_name: str | None = None,
        barcode: str | None = None,
    ) -> LimsWriter:
        """A writer for the sample at ``location`` (``puck:pin``) of ``visit``.

        With ``sample_lims_id`` that sample is used as it is. Otherwise the proposal, the
        session (``beamLineName``), the puck (Container ``puck-NN``, sampleChangerLocation
        ``puck``) and the pin (BLSample at location ``pin``, named ``sample_name`` or
        ``sample-<puck>-<pin>``, code ``barcode``) are upserted: calling this again creates
        nothing new. A puck or pin already in the LIMS at that place (from a sample sheet) is
        used as it is, not renamed. While the LIMS is down the upserts queue in the outbox
        and the writer holds their handles.
        """
        writer = cls(client, visit, sample_lims_id, beamline_name)
        writer.location = location
        writer.barcode = barcode
        if writer.enabled and sample_lims_id is None:
            puck, pin = parse_location(location)
            writer.sample = writer._find_or_add_sample(
                puck, pin, sample_name or f"sample-{puck}-{pin}", barcode
            )
        return writer

    # -- workflow -------------------------------------------------------------------------------

    def start_workflow(
        self, workflow_type: str, title: str, *, log_path: str | None = None
    ) -> None:
        """A Workflow (``MXPressE``, ``MeshScan`` ..) with status ``Started``; later groups,
        steps and workflow meshes belong to it."""
        if not self.enabled:
            return
        record = _record(
            r.Workflow,
            workflowType=workflow_type,
            workflowTitle=title,
            status="Started",
            logFilePath=log_path,
        )
        self.workflow = self._write("workflow", lambda c, v: c.add_workflow(record))

    def end_workflow(
        self, status: str, comments: str | None = None, result_path: str | None = None
    ) -> None:
        """The workflow's final status: ``Success``, ``Failure`` or ``Error``."""
        if not self.enabled or self.workflow is None:
            return
        record = _record(
            r.WorkflowUpdate, status=status, comments=comments, resultFilePath=result_path
        )
        workflow = self.workflow
        self._write("workflow end", lambda c, v: c.update_workflow(workflow, record))

    def add_step(
        self,
        step_type: str,
        status: str,
        *,
        comments: str | None = None,
        folder: str | None = None,
        image_path: str | None = None,
        result_path: str | None = None,
        crystal_size_um: tuple[float, float, float] | None = None,
        max_score: float | None = None,
    ) -> None:
        """A WorkflowStep of the workflow; ``max_score`` is the best DOZOR-like score."""
        if not self.enabled or self.workflow is None:
            return
        size: Sequence[float | None] = crystal_size_um or (None, None, None)
        if len(size) != 3:
            raise ValueError(f"crystal_size_um must be (x, y, z) in um, got {crystal_size_um!r}")
        record = _record(
            r.WorkflowStep,
            workflowStepType=step_type,
            status=status,
            comments=comments,
            folderPath=folder,
            imageResultFilePath=image_path,
            resultFilePath=result_path,
            crystalSizeX=size[0],
            crystalSizeY=size[1],
            crystalSizeZ=size[2],
            maxDozorScore=max_score,
        )
        workflow = self.workflow
        self._write("workflow step", lambda c, v: c.add_workflow_step(workflow, record))

    def add_workflow_mesh(
        self,
        *,
        best_image: int | None,
        values: Sequence[float] = (),
        cartography_path: str | None = None,
    ) -> Handle | None:
        """The outcome of a mesh in the workflow: best image number and up to four values
        (value1..value4); give the handle to :meth:`add_grid` to link the mesh's grid."""
        if not self.enabled or self.workflow is None:
            return None
        if len(values) > 4:
            raise ValueError(f"a WorkflowMesh holds up to 4 values, got {len(values)}: {values}")
        padded = [*values, None, None, None, None]
        record = _record(
            r.WorkflowMesh,
            bestImageId=best_image,
            value1=padded[0],
            value2=padded[1],
            value3=padded[2],
            value4=padded[3],
            cartographyPath=cartography_path,
        )
        workflow = self.workflow
        return self._write("workflow mesh", lambda c, v: c.add_workflow_mesh(workflow, record))

    # -- robot ----------------------------------------------------------------------------------

    def robot_action(
        self,
        action: str,
        *,
        start: datetime,
        end: datetime,
        status: str,
        message: str | None = None,
        location: str | None = None,
        barcode: str | None = None,
    ) -> None:
        """A sample changer action (``LOAD``, ``UNLOAD`` ..; status ``SUCCESS``, ``ERROR`` ..)
        on the writer's sample; ``location`` ``puck:pin`` (default: the sample's) gives
        dewarLocation = puck and containerLocation = pin."""
        if not self.enabled:
            return
        where = location or self.location
        puck, pin = parse_location(where) if where else (None, None)
        record = _record(
            r.RobotAction,
            actionType=action,
            startTimestamp=_utc(start, "start"),
            endTimestamp=_utc(end, "end"),
            status=status,
            message=message,
            containerLocation=pin,
            dewarLocation=puck,
            sampleBarcode=barcode or self.barcode,
        )
        sample = self.sample
        self._write(
            f"robot action {action}",
            lambda c, v: c.add_robot_action(v, record, sample=sample),
        )

    def sample_status(self, status: str, comments: str | None = None) -> None:
        """The sample's blSampleStatus (and comments, when given)."""
        if not self.enabled or self.sample is None:
            return
        record = _record(r.BLSampleUpdate, blSampleStatus=status, comments=comments)
        sample = self.sample
        self._write("sample status", lambda c, v: c.update_sample(sample, record))

    # -- data collections -----------------------------------------------------------------------

    def start_group(
        self, experiment_type: str, *, start: datetime, comments: str | None = None
    ) -> Handle | None:
        """A DataCollectionGroup (``Mesh``, ``Characterization``, ``OSC`` ..) of the sample,
        in the workflow started by :meth:`start_workflow`. None when nothing was written."""
        if not self.enabled:
            return None
        record = _record(
            r.DataCollectionGroup,
            experimentType=experiment_type,
            startTime=_utc(start, "start"),
            comments=comments,
        )
        sample, workflow = self.sample, self.workflow
        return self._write(
            f"{experiment_type} group",
            lambda c, v: c.add_data_group(v, record, sample=sample, workflow=workflow),
        )

    def end_group(self, group: Ref | None, *, end: datetime, comments: str | None = None) -> None:
        if not self.enabled or group is None:
            return
        record = _record(r.DataCollectionGroupUpdate, endTime=_utc(end, "end"), comments=comments)
        self._write("group end", lambda c, v: c.update_data_group(group, record))

    def add_collection(self, group: Ref | None, scan: ScanRecord) -> Handle | None:
        """A DataCollection in ``group``. Transmission goes from a fraction to ISPyB's
        percent, beam size from um to mm; axisEnd = omega start + images x oscillation."""
        if not self.enabled or group is None:
            return None
        axis_end = None
        if None not in (scan.omega_start_deg, scan.oscillation_deg, scan.n_images):
            assert scan.omega_start_deg is not None and scan.oscillation_deg is not None
            assert scan.n_images is not None
            axis_end = scan.omega_start_deg + scan.n_images * scan.oscillation_deg
        beam = scan.beam_centre_mm or (None, None)
        size_um = scan.beam_size_um or (None, None)
        record = _record(
            r.DataCollection,
            startTime=_utc(scan.start, "start"),
            runStatus=scan.run_status,
            omegaStart=scan.omega_start_deg,
            axisStart=scan.omega_start_deg,
            axisEnd=axis_end,
            axisRange=scan.oscillation_deg,
            overlap=scan.overlap_deg,
            rotationAxis=ROTATION_AXIS if scan.omega_start_deg is not None else None,
            numberOfImages=scan.n_images,
            startImageNumber=scan.start_image_number,
            exposureTime=scan.exposure_s,
            imageDirectory=scan.directory,
            imagePrefix=scan.prefix,
            dataCollectionNumber=scan.run_number,
            imageSuffix=scan.suffix,
            fileTemplate=scan.file_template,
            wavelength=scan.wavelength_a,
            resolution=scan.resolution_a,
            detectorDistance=scan.detector_distance_mm,
            xBeam=beam[0],
            yBeam=beam[1],
            transmission=_percent(scan.transmission, "transmission"),
            beamSizeAtSampleX=_mm(size_um[0]),
            beamSizeAtSampleY=_mm(size_um[1]),
            flux=scan.flux_ph_s,
            comments=scan.comments,
        )
        return self._write("data collection", lambda c, v: c.add_data_collection(group, record))

    def end_collection(
        self,
        collection: Ref | None,
        *,
        end: datetime,
        run_status: str,
        comments: str | None = None,
    ) -> None:
        """End time and runStatus (``Data collection successful``, ``Failed``, ``Aborted``)."""
        if not self.enabled or collection is None:
            return
        record = _record(
            r.DataCollectionUpdate,
            endTime=_utc(end, "end"),
            runStatus=run_status,
            comments=comments,
        )
        self._write(
            "data collection end", lambda c, v: c.update_data_collection(collection, record)
        )

    def add_position(self, collection: Ref | None, positions: Mapping[str, float]) -> None:
        """The centred position the collection starts from: posX, posY, posZ = phiy, sampx,
        sampy (mm)."""
        if not self.enabled or collection is None:
            return
        if not any(positions.get(name) is not None for name in ("phiy", "sampx", "sampy")):
            raise ValueError(f"positions need phiy, sampx or sampy (mm), got {dict(positions)}")
        record = _record(
            r.Position,
            posX=positions.get("phiy"),
            posY=positions.get("sampx"),
            posZ=positions.get("sampy"),
        )
        self._write("position", lambda c, v: c.add_position(collection, record))

    def add_grid(
        self, collection: Ref | None, grid: GridRecord, *, workflow_mesh: Ref | None = None
    ) -> None:
        """The GridInfo of a mesh collection, linked to ``workflow_mesh`` when given."""
        if not self.enabled or collection is None:
            return
        scale = grid.microns_per_pixel or (None, None)
        offset = grid.snapshot_offset_px or (None, None)
        record = _record(
            r.GridInfo,
            dx_mm=grid.dx_mm,
            dy_mm=grid.dy_mm,
            steps_x=grid.steps_x,
            steps_y=grid.steps_y,
            meshAngle=grid.mesh_angle_deg,
            orientation=grid.orientation,
            snaked=grid.snaked,
            micronsPerPixelX=scale[0],
            micronsPerPixelY=scale[1],
            snapshot_offsetXPixel=offset[0],
            snapshot_offsetYPixel=offset[1],
        )
        self._write(
            "grid",
            lambda c, v: c.add_grid_info(collection, record, workflow_mesh=workflow_mesh),
        )

    def add_quality_indicators(self, collection: Ref | None, rows: Sequence[QualityRow]) -> None:
        """Per-image scores in bulk (re-sending an image number updates it); ``resolution_a``
        is method1Res, ``score`` dozor_score."""
        if not self.enabled or collection is None or not rows:
            return
        records = [
            _record(
                r.ImageQualityIndicators,
                imageNumber=row.image_number,
                spotTotal=row.spot_total,
                goodBraggCandidates=row.good_bragg_candidates,
                method1Res=row.resolution_a,
                totalIntegratedSignal=row.total_integrated_signal,
                dozor_score=row.score,
            )
            for row in rows
        ]
        self._write(
            f"{len(records)} image quality indicators",
            lambda c, v: c.add_image_quality_indicators(collection, records),
        )

    def add_xray_centring(
        self,
        group: Ref | None,
        *,
        status: str,
        kind: str,
        regions: Sequence[Mapping[str, Any]],
    ) -> None:
        """An XrayCentring (status ``success``/``failed``/``pending``, kind ``2d``/``3d``) of
        ``group`` with one XrayCentringResult per region, best first. Region keys (others are
        ignored): centre_of_mass (x, y, z), max_voxel (i, j, k), n_voxels, total_count,
        bounding_box_min and bounding_box_max (x, y, z); grid units."""
        if not self.enabled or group is None:
            return
        results = [_centring_result(region) for region in regions]
        record = _record(r.XrayCentring, status=status, xrayCentringType=kind, results=results)
        self._write("xray centring", lambda c, v: c.add_xray_centring(group, record))

    def add_screening(self, collection: Ref | None, screening: ScreeningRecord) -> None:
        """The characterisation chain: Screening -> ScreeningOutput -> ScreeningOutputLattice
        (with a space group or cell) and, with a strategy, ScreeningStrategy -> Wedge ->
        SubWedge. Transmission and completeness go from fractions to ISPyB's percent; the
        dose (MGy) is doseTotal. A refusal stops the chain where it happened (a refused
        token does not: the whole chain queues for a flush)."""
        if not self.enabled or collection is None:
            return
        if screening.cell is not None and len(screening.cell) != 6:
            raise ValueError(f"cell must be (a, b, c, alpha, beta, gamma), got {screening.cell!r}")
        top = _record(r.Screening, programVersion=screening.program, comments=screening.comments)
        output_record = _record(
            r.ScreeningOutput,
            resolutionObtained=screening.resolution_a,
            mosaicity=screening.mosaicity_deg,
            numSpotsFound=screening.n_spots,
            indexingSuccess=screening.indexing_success,
            strategySuccess=screening.strategy_success,
        )
        lattice = None
        if screening.space_group is not None or screening.cell is not None:
            cell = screening.cell or (None,) * 6
            lattice = _record(
                r.ScreeningOutputLattice,
                spaceGroup=screening.space_group,
                unitCell_a=cell[0],
                unitCell_b=cell[1],
                unitCell_c=cell[2],
                unitCell_alpha=cell[3],
                unitCell_beta=cell[4],
                unitCell_gamma=cell[5],
            )
        chain = _strategy_records(screening.strategy) if screening.strategy else None

        found = self._write("screening", lambda c, v: c.add_screening(collection, top))
        if found is None:
            return
        output = self._write(
            "screening output", lambda c, v: c.add_screening_output(found, output_record)
        )
        if output is None:
            return
        if lattice is not None:
            self._write(
                "screening lattice",
                lambda c, v: c.add_screening_output_lattice(output, lattice),
            )
        if chain is None:
            return
        strategy_record, wedge_record, sub_wedge_record = chain
        strategy = self._write(
            "screening strategy", lambda c, v: c.add_screening_strategy(output, strategy_record)
        )
        if strategy is None:
            return
        wedge = self._write(
            "screening wedge",
            lambda c, v: c.add_screening_strategy_wedge(strategy, wedge_record),
        )
        if wedge is None:
            return
        self._write(
            "screening sub-wedge",
            lambda c, v: c.add_screening_strategy_sub_wedge(wedge, sub_wedge_record),
        )

    def add_processing(
        self, collection: Ref | None, summary: Mapping[str, Any], *, command: str | None = None
    ) -> None:
        """An AutoProcProgram for a processing summary (``bes.acquisition.processing``):
        ``program``, ``status`` (started/success/failed), ``simulated`` (the message then
        says so), ``message`` and the statistics known. ``space_group``, ``cell`` and an
        ``overall`` shell (resolution_a as the high-resolution limit, completeness as
        percent, multiplicity) and an ``outerShell`` (i_over_sigma, cc_half as percent,
        r_merge as a fraction, as given) make the AutoProc summary. Other keys are ignored."""
        if not self.enabled or collection is None:
            return
        status_text = str(summary.get("status", "")).lower()
        if status_text not in PROCESSING_STATUS:
            raise ValueError(
                f"processing status {summary.get('status')!r} unknown; "
                f"known: {', '.join(PROCESSING_STATUS)}"
            )
        message = summary.get("message") or None
        if summary.get("simulated"):
            message = f"simulated: {message}" if message else "simulated"
        record = _record(
            r.AutoProcProgram,
            processingPrograms=summary.get("program"),
            processingCommandLine=command,
            processingStatus=PROCESSING_STATUS[status_text],
            processingMessage=message,
            summary=_processing_summary(summary),
        )
        self._write("processing", lambda c, v: c.add_auto_proc_program(collection, record))

    # -- internals ------------------------------------------------------------------------------

    def _write(
        self, what: str, call: Callable[[LimsClient, Visit], Handle | None]
    ) -> Handle | None:
        """``call(client, visit)``: the handle of the record written (None for an update).

        A LIMS refusal is logged and kept, and answers None: the records that would depend
        on it are not written. A refused token is the exception: the client keeps the write
        in its outbox for a flush with the right token and this answers its handle, so the
        records that depend on it queue behind it and nothing of the tree is lost."""
        client, visit = self.client, self.visit
        if client is None or visit is None:
            return None
        try:
            return call(client, visit)
        except LimsAuthError as exc:
            error = f"{what}: {exc}"
            if not exc.kept:
                self._refused(error)
                return None
            log.warning(
                "LIMS write refused for its token, kept in the outbox for `bes lims flush` "
                "with the right one; the workflow goes on: %s",
                error,
            )
            self.errors.append(error)
            return exc.handle
        except LimsError as exc:
            self._refused(f"{what}: {exc}")
            return None

    def _refused(self, error: str) -> None:
        log.warning("LIMS write refused, the workflow goes on: %s", error)
        self.errors.append(error)

    def _find_or_add_sample(
        self, puck: int, pin: int, name: str, barcode: str | None
    ) -> Ref | None:
        assert self.visit is not None
        proposal = self.visit.proposal
        code = proposal.rstrip("0123456789")
        owner = r.Proposal(proposalCode=code, proposalNumber=proposal[len(code) :])
        if self._write("proposal", lambda c, v: c.add_proposal(owner)) is None:
            return None
        session_record = _record(
            r.BLSession, visit_number=self.visit.number, beamLineName=self.beamline_name
        )
        session = self._write("session", lambda c, v: c.add_session(v.proposal, session_record))
        if session is None:
            return None
        container: Ref | None = self._lookup(
            "containers", "containerId", {"sessionId": session.id}, sampleChangerLocation=str(puck)
        )
        if container is None:
            puck_record = r.Container(code=f"puck-{puck:02d}", sampleChangerLocation=str(puck))
            container = self._write("container", lambda c, v: c.add_container(v, puck_record))
        if container is None:
            return None
        container_id = container.id if isinstance(container, Handle) else container
        found = self._lookup(
            "samples", "blSampleId", {"containerId": container_id, "location": str(pin)}
        )
        if found is not None:
            return found
        pin_record = _record(r.BLSample, name=name, code=barcode, location=str(pin))
        held = container
        return self._write("sample", lambda c, v: c.add_sample(held, pin_record))

    def _lookup(
        self, resource: str, id_name: str, filters: Mapping[str, Any], **match: str
    ) -> int | None:
        """The id of the first record of ``resource`` matching ``filters`` (server side) and
        ``match`` (here); None when none does, or when the LIMS cannot be asked now."""
        client = self.client
        if client is None or client.down or any(v is None for v in filters.values()):
            return None
        try:
            rows = client.records(resource, **filters)
        except LimsError as exc:
            log.info("LIMS look-up of %s failed (%s); upserting instead", resource, exc)
            return None
        for row in rows:
            if all(row.get(key) == value for key, value in match.items()):
                return int(row[id_name])
        return None


# -- helpers -----------------------------------------------------------------------------------


def parse_location(location: str) -> tuple[int, int]:
    """``"puck:pin"`` -> (puck, pin), both >= 1."""
    puck, sep, pin = location.partition(":")
    if sep and puck.strip().isdigit() and pin.strip().isdigit():
        numbers = int(puck), int(pin)
        if min(numbers) >= 1:
            return numbers
    raise ValueError(f"sample location {location!r} is not 'puck:pin' (numbers >= 1), e.g. '1:5'")


def _record(model: type[M], **fields: Any) -> M:
    """``model`` with the fields that are not None: a create leaves the others out and an
    update (PATCH) sends only these, never clearing a field by accident. NumPy scalars (a
    count from an array, a flag from a comparison) become the Python number or bool they
    hold: the records' numbers are strict, so an ``np.int64`` is not an int to them, while
    a float where a count belongs (``400.0`` images) is still refused as the bug it is."""
    return model.model_validate(
        {
            name: value.item() if isinstance(value, np.generic) else value
            for name, value in fields.items()
            if value is not None
        }
    )


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} time {value.isoformat()} has no time zone; give an aware UTC datetime "
            "(datetime.now(UTC))"
        )
    return value.astimezone(UTC)


def _round(value: float) -> float:
    """Unit conversions without binary noise (0.07 * 100 -> 7.0, not 7.000000000000001)."""
    return round(value, 9)


def _mm(um: float | None) -> float | None:
    return None if um is None else _round(um / 1000.0)


def _percent(fraction: float | None, name: str, low: float = 0.0) -> float | None:
    """A fraction (0..1) as ISPyB's percent."""
    if fraction is None:
        return None
    if not low <= fraction <= 1.0:
        raise ValueError(f"{name} is a fraction ({low:g}..1), got {fraction!r}")
    return _round(fraction * 100.0)


def _triple(region: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = region.get(key)
    if value is None:
        return (None, None, None)
    if len(value) != 3:
        raise ValueError(f"xray centring region {key} must be (x, y, z), got {value!r}")
    return tuple(value)


def _centring_result(region: Mapping[str, Any]) -> r.XrayCentringResult:
    centre = _triple(region, "centre_of_mass")
    voxel = _triple(region, "max_voxel")
    low = _triple(region, "bounding_box_min")
    high = _triple(region, "bounding_box_max")
    return _record(
        r.XrayCentringResult,
        centreOfMassX=centre[0],
        centreOfMassY=centre[1],
        centreOfMassZ=centre[2],
        maxVoxelX=voxel[0],
        maxVoxelY=voxel[1],
        maxVoxelZ=voxel[2],
        numberOfVoxels=region.get("n_voxels"),
        totalCount=region.get("total_count"),
        boundingBoxMinX=low[0],
        boundingBoxMinY=low[1],
        boundingBoxMinZ=low[2],
        boundingBoxMaxX=high[0],
        boundingBoxMaxY=high[1],
        boundingBoxMaxZ=high[2],
    )


def _strategy_records(
    strategy: StrategyRecord,
) -> tuple[r.ScreeningStrategy, r.ScreeningStrategyWedge, r.ScreeningStrategySubWedge]:
    transmission = _percent(strategy.transmission, "strategy transmission")
    completeness = _percent(strategy.completeness, "strategy completeness")
    axis_end = strategy.omega_start_deg + strategy.total_range_deg
    return (
        _record(
            r.ScreeningStrategy,
            phiStart=strategy.omega_start_deg,
            phiEnd=axis_end,
            rotation=strategy.oscillation_deg,
            exposureTime=strategy.exposure_s,
            resolution=strategy.resolution_a,
            completeness=completeness,
            multiplicity=strategy.multiplicity,
            transmission=transmission,
        ),
        _record(
            r.ScreeningStrategyWedge,
            wedgeNumber=1,
            resolution=strategy.resolution_a,
            completeness=completeness,
            multiplicity=strategy.multiplicity,
            doseTotal=strategy.dose_mgy,
            numberOfImages=strategy.n_images,
        ),
        _record(
            r.ScreeningStrategySubWedge,
            subWedgeNumber=1,
            rotationAxis=ROTATION_AXIS,
            axisStart=strategy.omega_start_deg,
            axisEnd=axis_end,
            oscillationRange=strategy.oscillation_deg,
            exposureTime=strategy.exposure_s,
            transmission=transmission,
            numberOfImages=strategy.n_images,
            completeness=completeness,
            multiplicity=strategy.multiplicity,
            doseTotal=strategy.dose_mgy,
        ),
    )


def _processing_summary(summary: Mapping[str, Any]) -> r.AutoProcSummary | None:
    """Space group, cell and the overall and outer-shell statistics a summary knows."""
    cell = summary.get("cell")
    if cell is not None and len(cell) != 6:
        raise ValueError(f"processing cell must be (a, b, c, alpha, beta, gamma), got {cell!r}")
    resolution = summary.get("resolution_a")
    shells = []
    overall = {
        "resolutionLimitHigh": resolution,
        "completeness": _percent(summary.get("completeness"), "completeness"),
        "multiplicity": summary.get("multiplicity"),
    }
    outer = {
        "meanIOverSigI": summary.get("i_over_sigma"),
        "ccHalf": _percent(summary.get("cc_half"), "cc_half", low=-1.0),
        "rMerge": summary.get("r_merge"),
    }
    if any(value is not None for value in outer.values()):
        outer["resolutionLimitHigh"] = resolution
    for kind, values in (("overall", overall), ("outerShell", outer)):
        if any(value is not None for value in values.values()):
            shells.append(
                _record(
                    r.AutoProcScalingStatistics,
                    scalingStatisticsType=kind,
                    **values,
                )
            )
    space_group = summary.get("space_group")
    if not shells and space_group is None and cell is None:
        return None
    a, b, c, alpha, beta, gamma = cell if cell is not None else (None,) * 6
    return _record(
        r.AutoProcSummary,
        spaceGroup=space_group,
        refinedCell_a=a,
        refinedCell_b=b,
        refinedCell_c=c,
        refinedCell_alpha=alpha,
        refinedCell_beta=beta,
        refinedCell_gamma=gamma,
        statistics=shells,
    )
