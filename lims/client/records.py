"""The LIMS records on the wire: ISPyB table and column names, one pydantic model per record.

Defined once, here: the client validates a record when a task builds it (so a bad record
fails in the task, not later in the outbox) and ``lims.service`` validates request bodies
against the same models, so the two cannot drift. Field names are ISPyB column names
(``experimentType``, ``dx_mm``, ``unitCell_a``); ``None`` fields are left out of a request.
Links to parent records travel in the path (``/data-groups/{id}/data-collections``); the
few links inside a body (``blSampleId``, ``workflowId``, ``crystalId``, ``workflowMeshId``)
are set by the client from handles.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

MAX_INT = 2**31 - 1
"""ISPyB ids and counts are 32-bit integers."""

# Numbers and booleans are strict: JSON ``true`` is not 1, ``"12"`` is not 12 and ``1`` is not
# ``true`` (the OpenAPI schema says integer / number / boolean, and a request breaking it gets
# a 422 naming the field). An integer is a valid float. Strings (datetimes, enumerations) stay
# as they are: FastAPI validates parsed JSON in Python mode, where a strict datetime would
# refuse the ISO text it arrives as. ``model_validate_strings`` reads text (CSV sample sheets).
Int = Annotated[StrictInt, Field(ge=-MAX_INT, le=MAX_INT)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
Float = StrictFloat
Bool = StrictBool
Name = Annotated[str, Field(max_length=255)]
Code = Annotated[str, Field(min_length=1, max_length=45)]
Text = Annotated[str, Field(max_length=4000)]
FilePath = Annotated[str, Field(max_length=1024)]

ExperimentType = Literal[
    "OSC",
    "Mesh",
    "Mesh3D",
    "Characterization",
    "Helical",
    "SAD",
    "MAD",
    "Screening",
    "Still",
    "Collect - Multiwedge",
    "Energy scan",
    "XRF spectrum",
]
WorkflowType = Literal[
    "Undefined",
    "MeshScan",
    "LineScan",
    "XrayCentering",
    "Characterisation",
    "EnhancedCharacterisation",
    "HelicalCharacterisation",
    "KappaReorientation",
    "BurnStrategy",
    "DiffractionTomography",
    "TroubleShooting",
    "MXPressE",
    "MXPressO",
    "MXPressA",
    "MeshAndCollect",
]
WorkflowStatus = Literal["Started", "Success", "Failure", "Error"]
RobotActionType = Literal["LOAD", "UNLOAD", "DISPOSE", "STORE", "WASH", "ANNEAL", "MOSAIC"]
RobotActionStatus = Literal[
    "SUCCESS", "ERROR", "CRITICAL", "WARNING", "EPICSFAIL", "COMMANDNOTSENT"
]
ProcessingStatus = Literal["RUNNING", "SUCCESS", "FAILED"]
ScalingStatisticsType = Literal["overall", "innerShell", "outerShell"]


class Record(BaseModel):
    """Base of every record: unknown fields, NaN and infinities are refused, and so are
    numbers given as booleans or text (strict ``Int``, ``Float``, ``Bool``), also when a field
    is set after the record was made."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, str_max_length=255, validate_assignment=True
    )


# -- proposal, session, samples --------------------------------------------------------------


class Proposal(Record):
    """A proposal ``mx1234``: code ``mx``, number ``1234``. Upserted on (code, number)."""

    proposalCode: Annotated[str, Field(pattern=r"^[A-Za-z]{1,45}$")]
    proposalNumber: Annotated[str, Field(pattern=r"^[0-9]{1,45}$")]
    title: Name | None = None


class BLSession(Record):
    """A beamline session (visit ``mx1234-1``). Upserted on (proposal, visit_number)."""

    visit_number: Id
    beamLineName: Code | None = None
    startDate: datetime | None = None
    endDate: datetime | None = None
    comments: Text | None = None


class Protein(Record):
    """A macromolecule of a proposal. Upserted on (proposal, acronym)."""

    acronym: Code
    name: Name | None = None


class Crystal(Record):
    """A crystal form of a protein; samples share it. Upserted on all its fields."""

    name: Name | None = None
    spaceGroup: Code | None = None
    cell_a: Float | None = None
    cell_b: Float | None = None
    cell_c: Float | None = None
    cell_alpha: Float | None = None
    cell_beta: Float | None = None
    cell_gamma: Float | None = None
    comments: Text | None = None


class Container(Record):
    """A puck of a session. Upserted on (session, code)."""

    code: Code
    barcode: Code | None = None
    capacity: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    sampleChangerLocation: Code | None = None
    containerType: Code | None = None


class BLSample(Record):
    """A pin in a container. Upserted on (container, location)."""

    name: Name
    code: Code | None = None
    location: Code | None = None
    blSampleStatus: Code | None = None
    comments: Text | None = None
    crystalId: Id | None = None


class BLSampleUpdate(BLSample):
    name: Name | None = None  # type: ignore[assignment]


# -- data collections --------------------------------------------------------------------------


class DataCollectionGroup(Record):
    """A group of data collections on one sample: a mesh, a characterisation, a rotation."""

    experimentType: ExperimentType
    startTime: datetime | None = None
    endTime: datetime | None = None
    comments: Text | None = None
    blSampleId: Id | None = None
    workflowId: Id | None = None


class DataCollectionGroupUpdate(DataCollectionGroup):
    experimentType: ExperimentType | None = None  # type: ignore[assignment]


class DataCollection(Record):
    """One sweep or mesh of images. runStatus is text; readers match substrings of
    ``Data collection successful``, ``Failed``, ``Aborted``, ``Running``."""

    dataCollectionNumber: Count | None = None
    startTime: datetime | None = None
    endTime: datetime | None = None
    runStatus: Name | None = None
    axisStart: Float | None = None
    axisEnd: Float | None = None
    axisRange: Float | None = None
    overlap: Float | None = None
    rotationAxis: Code | None = None
    omegaStart: Float | None = None
    kappaStart: Float | None = None
    phiStart: Float | None = None
    numberOfImages: Count | None = None
    startImageNumber: Count | None = None
    exposureTime: Float | None = None
    imageDirectory: FilePath | None = None
    imagePrefix: Name | None = None
    imageSuffix: Code | None = None
    fileTemplate: Name | None = None
    wavelength: Float | None = None
    resolution: Float | None = None
    detectorDistance: Float | None = None
    xBeam: Float | None = None
    yBeam: Float | None = None
    transmission: Float | None = None
    beamSizeAtSampleX: Float | None = None
    beamSizeAtSampleY: Float | None = None
    flux: Float | None = None
    comments: Text | None = None
    xtalSnapshotFullPath1: FilePath | None = None
    xtalSnapshotFullPath2: FilePath | None = None
    xtalSnapshotFullPath3: FilePath | None = None
    xtalSnapshotFullPath4: FilePath | None = None


DataCollectionUpdate = DataCollection
"""Every DataCollection field is optional: a PATCH sends the fields that were set."""


class GridInfo(Record):
    """The mesh of a data collection: steps, step sizes (mm) and snapshot geometry."""

    dx_mm: Float | None = None
    dy_mm: Float | None = None
    steps_x: Count | None = None
    steps_y: Count | None = None
    meshAngle: Float | None = None
    orientation: Literal["horizontal", "vertical"] | None = None
    snaked: Bool | None = None
    micronsPerPixelX: Float | None = None
    micronsPerPixelY: Float | None = None
    snapshot_offsetXPixel: Float | None = None
    snapshot_offsetYPixel: Float | None = None
    workflowMeshId: Id | None = None


class Position(Record):
    """A centred position (motor coordinates, mm) where a data collection starts."""

    posX: Float | None = None
    posY: Float | None = None
    posZ: Float | None = None
    scale: Float | None = None


class ImageQualityIndicators(Record):
    """Per-image scores; natural key (dataCollectionId, imageNumber): re-sending updates."""

    imageNumber: Count
    spotTotal: Count | None = None
    goodBraggCandidates: Count | None = None
    method1Res: Float | None = None
    method2Res: Float | None = None
    totalIntegratedSignal: Float | None = None
    dozor_score: Float | None = None


class XrayCentringResult(Record):
    """One crystal found by 3D X-ray centring (grid units: voxels)."""

    centreOfMassX: Float | None = None
    centreOfMassY: Float | None = None
    centreOfMassZ: Float | None = None
    maxVoxelX: Int | None = None
    maxVoxelY: Int | None = None
    maxVoxelZ: Int | None = None
    numberOfVoxels: Count | None = None
    totalCount: Float | None = None
    boundingBoxMinX: Float | None = None
    boundingBoxMaxX: Float | None = None
    boundingBoxMinY: Float | None = None
    boundingBoxMaxY: Float | None = None
    boundingBoxMinZ: Float | None = None
    boundingBoxMaxZ: Float | None = None


class XrayCentring(Record):
    """An X-ray centring of a data collection group and the crystals it found (best first);
    ``status="failed"`` with no results records "no diffraction"."""

    status: Literal["success", "failed", "pending"]
    xrayCentringType: Literal["2d", "3d"] | None = None
    results: Annotated[list[XrayCentringResult], Field(max_length=1000)] = []


class RobotAction(Record):
    """A sample changer action (LOAD, UNLOAD, ...) of a session."""

    actionType: RobotActionType
    startTimestamp: datetime | None = None
    endTimestamp: datetime | None = None
    status: RobotActionStatus | None = None
    message: Text | None = None
    containerLocation: Count | None = None
    dewarLocation: Count | None = None
    sampleBarcode: Code | None = None
    blsampleId: Id | None = None


class RobotActionUpdate(RobotAction):
    actionType: RobotActionType | None = None  # type: ignore[assignment]


# -- workflows ---------------------------------------------------------------------------------


class Workflow(Record):
    """A workflow run (MXPressE, MeshScan, ...); data collection groups point to it."""

    workflowType: WorkflowType
    workflowTitle: Name | None = None
    status: WorkflowStatus | None = None
    comments: Text | None = None
    logFilePath: FilePath | None = None
    resultFilePath: FilePath | None = None


class WorkflowUpdate(Workflow):
    workflowType: WorkflowType | None = None  # type: ignore[assignment]


class WorkflowStep(Record):
    """A step of a workflow, with what it found (crystal size in um, best DOZOR score)."""

    workflowStepType: Code | None = None
    status: Code | None = None
    folderPath: FilePath | None = None
    imageResultFilePath: FilePath | None = None
    htmlResultFilePath: FilePath | None = None
    resultFilePath: FilePath | None = None
    comments: Text | None = None
    crystalSizeX: Float | None = None
    crystalSizeY: Float | None = None
    crystalSizeZ: Float | None = None
    maxDozorScore: Float | None = None


WorkflowStepUpdate = WorkflowStep


class WorkflowMesh(Record):
    """The outcome of a mesh scan in a workflow: best position / image and four values."""

    bestPositionId: Id | None = None
    bestImageId: Count | None = None
    value1: Float | None = None
    value2: Float | None = None
    value3: Float | None = None
    value4: Float | None = None
    cartographyPath: FilePath | None = None


# -- characterisation: the screening chain -----------------------------------------------------


class Screening(Record):
    programVersion: Name | None = None
    comments: Text | None = None
    shortComments: Text | None = None


class ScreeningOutput(Record):
    statusDescription: Text | None = None
    program: Code | None = None
    resolutionObtained: Float | None = None
    mosaicity: Float | None = None
    numSpotsFound: Count | None = None
    indexingSuccess: Bool | None = None
    strategySuccess: Bool | None = None
    rankingResolution: Float | None = None


class ScreeningOutputLattice(Record):
    spaceGroup: Code | None = None
    pointGroup: Code | None = None
    bravaisLattice: Code | None = None
    unitCell_a: Float | None = None
    unitCell_b: Float | None = None
    unitCell_c: Float | None = None
    unitCell_alpha: Float | None = None
    unitCell_beta: Float | None = None
    unitCell_gamma: Float | None = None


class ScreeningStrategy(Record):
    program: Code | None = None
    phiStart: Float | None = None
    phiEnd: Float | None = None
    rotation: Float | None = None
    exposureTime: Float | None = None
    resolution: Float | None = None
    completeness: Float | None = None
    multiplicity: Float | None = None
    anomalous: Bool | None = None
    rankingResolution: Float | None = None
    transmission: Float | None = None


class ScreeningStrategyWedge(Record):
    wedgeNumber: Count | None = None
    resolution: Float | None = None
    completeness: Float | None = None
    multiplicity: Float | None = None
    doseTotal: Float | None = None
    numberOfImages: Count | None = None
    phi: Float | None = None
    kappa: Float | None = None
    chi: Float | None = None
    wavelength: Float | None = None
    comments: Text | None = None


class ScreeningStrategySubWedge(Record):
    subWedgeNumber: Count | None = None
    rotationAxis: Code | None = None
    axisStart: Float | None = None
    axisEnd: Float | None = None
    oscillationRange: Float | None = None
    exposureTime: Float | None = None
    transmission: Float | None = None
    numberOfImages: Count | None = None
    completeness: Float | None = None
    multiplicity: Float | None = None
    doseTotal: Float | None = None
    comments: Text | None = None


# -- processing --------------------------------------------------------------------------------


class AutoProcScalingStatistics(Record):
    """One shell of the processing summary."""

    scalingStatisticsType: ScalingStatisticsType
    resolutionLimitLow: Float | None = None
    resolutionLimitHigh: Float | None = None
    rMerge: Float | None = None
    rMeasAllIPlusIMinus: Float | None = None
    meanIOverSigI: Float | None = None
    completeness: Float | None = None
    multiplicity: Float | None = None
    ccHalf: Float | None = None
    anomalousCompleteness: Float | None = None
    anomalousMultiplicity: Float | None = None
    nTotalObservations: Count | None = None
    nTotalUniqueObservations: Count | None = None


class AutoProcSummary(Record):
    """Space group, refined cell and per-shell statistics (ISPyB AutoProc, AutoProcScaling,
    AutoProcScalingStatistics)."""

    spaceGroup: Code | None = None
    refinedCell_a: Float | None = None
    refinedCell_b: Float | None = None
    refinedCell_c: Float | None = None
    refinedCell_alpha: Float | None = None
    refinedCell_beta: Float | None = None
    refinedCell_gamma: Float | None = None
    statistics: Annotated[list[AutoProcScalingStatistics], Field(max_length=10)] = []


class AutoProcProgram(Record):
    """A processing run on a data collection, with its summary once known."""

    processingPrograms: Name | None = None
    processingCommandLine: Text | None = None
    processingStatus: ProcessingStatus | None = None
    processingMessage: Text | None = None
    processingStartTime: datetime | None = None
    processingEndTime: datetime | None = None
    summary: AutoProcSummary | None = None


AutoProcProgramUpdate = AutoProcProgram
