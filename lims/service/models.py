"""The LIMS database: ISPyB tables and columns (names kept exactly, camelCase included).

A subset of the ISPyB schema, enough for what an MX automation writes. Departures: the
session link of a Container (``Container.sessionId``, as in ISPyB's queue extension, in
place of Dewar/Shipping); ``AutoProcProgram`` reaches its data collection through
``AutoProcIntegration`` as in ISPyB; ``lims_idempotency_key`` is ours (not ISPyB).
Enumerations are stored as text and checked by the request models.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def _pk() -> Mapped[int]:
    return mapped_column(Integer, primary_key=True, autoincrement=True)


def _fk(target: str, nullable: bool = True) -> Mapped[int | None]:
    return mapped_column(Integer, ForeignKey(target), nullable=nullable, index=True)


def _str(length: int = 255) -> Mapped[str | None]:
    return mapped_column(String(length))


def _text() -> Mapped[str | None]:
    return mapped_column(Text)


def _float() -> Mapped[float | None]:
    return mapped_column(Float)


def _int() -> Mapped[int | None]:
    return mapped_column(Integer)


def _time() -> Mapped[datetime | None]:
    return mapped_column(DateTime)


def _stamp() -> Mapped[datetime]:
    return mapped_column(DateTime, default=utcnow, nullable=False)


# -- proposal, session, samples --------------------------------------------------------------


class Proposal(Base):
    __tablename__ = "Proposal"
    __table_args__ = (UniqueConstraint("proposalCode", "proposalNumber"),)
    proposalId: Mapped[int] = _pk()
    proposalCode: Mapped[str] = mapped_column(String(45), nullable=False)
    proposalNumber: Mapped[str] = mapped_column(String(45), nullable=False)
    title: Mapped[str | None] = _str()


class BLSession(Base):
    __tablename__ = "BLSession"
    __table_args__ = (UniqueConstraint("proposalId", "visit_number"),)
    sessionId: Mapped[int] = _pk()
    proposalId: Mapped[int] = mapped_column(ForeignKey("Proposal.proposalId"), nullable=False)
    visit_number: Mapped[int] = mapped_column(Integer, nullable=False)
    beamLineName: Mapped[str | None] = _str(45)
    startDate: Mapped[datetime | None] = _time()
    endDate: Mapped[datetime | None] = _time()
    comments: Mapped[str | None] = _text()


class Protein(Base):
    __tablename__ = "Protein"
    __table_args__ = (UniqueConstraint("proposalId", "acronym"),)
    proteinId: Mapped[int] = _pk()
    proposalId: Mapped[int] = mapped_column(ForeignKey("Proposal.proposalId"), nullable=False)
    acronym: Mapped[str] = mapped_column(String(45), nullable=False)
    name: Mapped[str | None] = _str()


class Crystal(Base):
    __tablename__ = "Crystal"
    crystalId: Mapped[int] = _pk()
    proteinId: Mapped[int] = mapped_column(
        ForeignKey("Protein.proteinId"), nullable=False, index=True
    )
    name: Mapped[str | None] = _str()
    spaceGroup: Mapped[str | None] = _str(45)
    cell_a: Mapped[float | None] = _float()
    cell_b: Mapped[float | None] = _float()
    cell_c: Mapped[float | None] = _float()
    cell_alpha: Mapped[float | None] = _float()
    cell_beta: Mapped[float | None] = _float()
    cell_gamma: Mapped[float | None] = _float()
    comments: Mapped[str | None] = _text()


class Container(Base):
    __tablename__ = "Container"
    __table_args__ = (UniqueConstraint("sessionId", "code"),)
    containerId: Mapped[int] = _pk()
    sessionId: Mapped[int] = mapped_column(ForeignKey("BLSession.sessionId"), nullable=False)
    code: Mapped[str] = mapped_column(String(45), nullable=False)
    barcode: Mapped[str | None] = _str(45)
    capacity: Mapped[int | None] = _int()
    sampleChangerLocation: Mapped[str | None] = _str(45)
    containerType: Mapped[str | None] = _str(45)


class BLSample(Base):
    __tablename__ = "BLSample"
    __table_args__ = (UniqueConstraint("containerId", "location"),)
    blSampleId: Mapped[int] = _pk()
    containerId: Mapped[int] = mapped_column(
        ForeignKey("Container.containerId"), nullable=False, index=True
    )
    crystalId: Mapped[int | None] = _fk("Crystal.crystalId")
    name: Mapped[str | None] = _str()
    code: Mapped[str | None] = _str(45)
    location: Mapped[str | None] = _str(45)
    blSampleStatus: Mapped[str | None] = _str(45)
    comments: Mapped[str | None] = _text()


# -- workflows ---------------------------------------------------------------------------------


class Workflow(Base):
    __tablename__ = "Workflow"
    workflowId: Mapped[int] = _pk()
    workflowTitle: Mapped[str | None] = _str()
    workflowType: Mapped[str | None] = _str(45)
    status: Mapped[str | None] = _str()
    comments: Mapped[str | None] = _text()
    logFilePath: Mapped[str | None] = _str(1024)
    resultFilePath: Mapped[str | None] = _str(1024)
    recordTimeStamp: Mapped[datetime] = _stamp()


class WorkflowStep(Base):
    __tablename__ = "WorkflowStep"
    workflowStepId: Mapped[int] = _pk()
    workflowId: Mapped[int] = mapped_column(
        ForeignKey("Workflow.workflowId"), nullable=False, index=True
    )
    workflowStepType: Mapped[str | None] = _str(45)
    status: Mapped[str | None] = _str(45)
    folderPath: Mapped[str | None] = _str(1024)
    imageResultFilePath: Mapped[str | None] = _str(1024)
    htmlResultFilePath: Mapped[str | None] = _str(1024)
    resultFilePath: Mapped[str | None] = _str(1024)
    comments: Mapped[str | None] = _text()
    crystalSizeX: Mapped[float | None] = _float()
    crystalSizeY: Mapped[float | None] = _float()
    crystalSizeZ: Mapped[float | None] = _float()
    maxDozorScore: Mapped[float | None] = _float()
    recordTimeStamp: Mapped[datetime] = _stamp()


class WorkflowMesh(Base):
    __tablename__ = "WorkflowMesh"
    workflowMeshId: Mapped[int] = _pk()
    workflowId: Mapped[int] = mapped_column(
        ForeignKey("Workflow.workflowId"), nullable=False, index=True
    )
    bestPositionId: Mapped[int | None] = _fk("Position.positionId")
    bestImageId: Mapped[int | None] = _int()
    value1: Mapped[float | None] = _float()
    value2: Mapped[float | None] = _float()
    value3: Mapped[float | None] = _float()
    value4: Mapped[float | None] = _float()
    cartographyPath: Mapped[str | None] = _str(1024)
    recordTimeStamp: Mapped[datetime] = _stamp()


# -- data collections --------------------------------------------------------------------------


class DataCollectionGroup(Base):
    __tablename__ = "DataCollectionGroup"
    dataCollectionGroupId: Mapped[int] = _pk()
    sessionId: Mapped[int] = mapped_column(
        ForeignKey("BLSession.sessionId"), nullable=False, index=True
    )
    blSampleId: Mapped[int | None] = _fk("BLSample.blSampleId")
    workflowId: Mapped[int | None] = _fk("Workflow.workflowId")
    experimentType: Mapped[str | None] = _str(45)
    startTime: Mapped[datetime | None] = _time()
    endTime: Mapped[datetime | None] = _time()
    comments: Mapped[str | None] = _text()


class Position(Base):
    __tablename__ = "Position"
    positionId: Mapped[int] = _pk()
    posX: Mapped[float | None] = _float()
    posY: Mapped[float | None] = _float()
    posZ: Mapped[float | None] = _float()
    scale: Mapped[float | None] = _float()
    recordTimeStamp: Mapped[datetime] = _stamp()


class DataCollection(Base):
    __tablename__ = "DataCollection"
    dataCollectionId: Mapped[int] = _pk()
    dataCollectionGroupId: Mapped[int] = mapped_column(
        ForeignKey("DataCollectionGroup.dataCollectionGroupId"), nullable=False, index=True
    )
    startPositionId: Mapped[int | None] = _fk("Position.positionId")
    dataCollectionNumber: Mapped[int | None] = _int()
    startTime: Mapped[datetime | None] = _time()
    endTime: Mapped[datetime | None] = _time()
    runStatus: Mapped[str | None] = _str()
    axisStart: Mapped[float | None] = _float()
    axisEnd: Mapped[float | None] = _float()
    axisRange: Mapped[float | None] = _float()
    overlap: Mapped[float | None] = _float()
    rotationAxis: Mapped[str | None] = _str(45)
    omegaStart: Mapped[float | None] = _float()
    kappaStart: Mapped[float | None] = _float()
    phiStart: Mapped[float | None] = _float()
    numberOfImages: Mapped[int | None] = _int()
    startImageNumber: Mapped[int | None] = _int()
    exposureTime: Mapped[float | None] = _float()
    imageDirectory: Mapped[str | None] = _str(1024)
    imagePrefix: Mapped[str | None] = _str()
    imageSuffix: Mapped[str | None] = _str(45)
    fileTemplate: Mapped[str | None] = _str()
    wavelength: Mapped[float | None] = _float()
    resolution: Mapped[float | None] = _float()
    detectorDistance: Mapped[float | None] = _float()
    xBeam: Mapped[float | None] = _float()
    yBeam: Mapped[float | None] = _float()
    transmission: Mapped[float | None] = _float()
    beamSizeAtSampleX: Mapped[float | None] = _float()
    beamSizeAtSampleY: Mapped[float | None] = _float()
    flux: Mapped[float | None] = _float()
    comments: Mapped[str | None] = _text()
    xtalSnapshotFullPath1: Mapped[str | None] = _str(1024)
    xtalSnapshotFullPath2: Mapped[str | None] = _str(1024)
    xtalSnapshotFullPath3: Mapped[str | None] = _str(1024)
    xtalSnapshotFullPath4: Mapped[str | None] = _str(1024)


class GridInfo(Base):
    __tablename__ = "GridInfo"
    gridInfoId: Mapped[int] = _pk()
    dataCollectionId: Mapped[int] = mapped_column(
        ForeignKey("DataCollection.dataCollectionId"), nullable=False, index=True
    )
    workflowMeshId: Mapped[int | None] = _fk("WorkflowMesh.workflowMeshId")
    dx_mm: Mapped[float | None] = _float()
    dy_mm: Mapped[float | None] = _float()
    steps_x: Mapped[int | None] = _int()
    steps_y: Mapped[int | None] = _int()
    meshAngle: Mapped[float | None] = _float()
    orientation: Mapped[str | None] = _str(45)
    snaked: Mapped[bool | None] = mapped_column(Boolean)
    micronsPerPixelX: Mapped[float | None] = _float()
    micronsPerPixelY: Mapped[float | None] = _float()
    snapshot_offsetXPixel: Mapped[float | None] = _float()
    snapshot_offsetYPixel: Mapped[float | None] = _float()
    recordTimeStamp: Mapped[datetime] = _stamp()


class ImageQualityIndicators(Base):
    __tablename__ = "ImageQualityIndicators"
    dataCollectionId: Mapped[int] = mapped_column(
        ForeignKey("DataCollection.dataCollectionId"), primary_key=True
    )
    imageNumber: Mapped[int] = mapped_column(Integer, primary_key=True)
    spotTotal: Mapped[int | None] = _int()
    goodBraggCandidates: Mapped[int | None] = _int()
    method1Res: Mapped[float | None] = _float()
    method2Res: Mapped[float | None] = _float()
    totalIntegratedSignal: Mapped[float | None] = _float()
    dozor_score: Mapped[float | None] = _float()
    recordTimeStamp: Mapped[datetime] = _stamp()


class XrayCentring(Base):
    __tablename__ = "XrayCentring"
    xrayCentringId: Mapped[int] = _pk()
    dataCollectionGroupId: Mapped[int] = mapped_column(
        ForeignKey("DataCollectionGroup.dataCollectionGroupId"), nullable=False, index=True
    )
    status: Mapped[str | None] = _str(45)
    xrayCentringType: Mapped[str | None] = _str(45)


class XrayCentringResult(Base):
    __tablename__ = "XrayCentringResult"
    xrayCentringResultId: Mapped[int] = _pk()
    xrayCentringId: Mapped[int] = mapped_column(
        ForeignKey("XrayCentring.xrayCentringId"), nullable=False, index=True
    )
    centreOfMassX: Mapped[float | None] = _float()
    centreOfMassY: Mapped[float | None] = _float()
    centreOfMassZ: Mapped[float | None] = _float()
    maxVoxelX: Mapped[int | None] = _int()
    maxVoxelY: Mapped[int | None] = _int()
    maxVoxelZ: Mapped[int | None] = _int()
    numberOfVoxels: Mapped[int | None] = _int()
    totalCount: Mapped[float | None] = _float()
    boundingBoxMinX: Mapped[float | None] = _float()
    boundingBoxMaxX: Mapped[float | None] = _float()
    boundingBoxMinY: Mapped[float | None] = _float()
    boundingBoxMaxY: Mapped[float | None] = _float()
    boundingBoxMinZ: Mapped[float | None] = _float()
    boundingBoxMaxZ: Mapped[float | None] = _float()


class RobotAction(Base):
    __tablename__ = "RobotAction"
    robotActionId: Mapped[int] = _pk()
    blsessionId: Mapped[int] = mapped_column(
        ForeignKey("BLSession.sessionId"), nullable=False, index=True
    )
    blsampleId: Mapped[int | None] = _fk("BLSample.blSampleId")
    actionType: Mapped[str | None] = _str(45)
    startTimestamp: Mapped[datetime | None] = _time()
    endTimestamp: Mapped[datetime | None] = _time()
    status: Mapped[str | None] = _str(45)
    message: Mapped[str | None] = _text()
    containerLocation: Mapped[int | None] = _int()
    dewarLocation: Mapped[int | None] = _int()
    sampleBarcode: Mapped[str | None] = _str(45)


# -- characterisation: the screening chain -----------------------------------------------------


class Screening(Base):
    __tablename__ = "Screening"
    screeningId: Mapped[int] = _pk()
    dataCollectionId: Mapped[int] = mapped_column(
        ForeignKey("DataCollection.dataCollectionId"), nullable=False, index=True
    )
    programVersion: Mapped[str | None] = _str()
    comments: Mapped[str | None] = _text()
    shortComments: Mapped[str | None] = _text()
    timeStamp: Mapped[datetime] = _stamp()


class ScreeningOutput(Base):
    __tablename__ = "ScreeningOutput"
    screeningOutputId: Mapped[int] = _pk()
    screeningId: Mapped[int] = mapped_column(
        ForeignKey("Screening.screeningId"), nullable=False, index=True
    )
    statusDescription: Mapped[str | None] = _text()
    program: Mapped[str | None] = _str(45)
    resolutionObtained: Mapped[float | None] = _float()
    mosaicity: Mapped[float | None] = _float()
    numSpotsFound: Mapped[int | None] = _int()
    indexingSuccess: Mapped[bool | None] = mapped_column(Boolean)
    strategySuccess: Mapped[bool | None] = mapped_column(Boolean)
    rankingResolution: Mapped[float | None] = _float()


class ScreeningOutputLattice(Base):
    __tablename__ = "ScreeningOutputLattice"
    screeningOutputLatticeId: Mapped[int] = _pk()
    screeningOutputId: Mapped[int] = mapped_column(
        ForeignKey("ScreeningOutput.screeningOutputId"), nullable=False, index=True
    )
    spaceGroup: Mapped[str | None] = _str(45)
    pointGroup: Mapped[str | None] = _str(45)
    bravaisLattice: Mapped[str | None] = _str(45)
    unitCell_a: Mapped[float | None] = _float()
    unitCell_b: Mapped[float | None] = _float()
    unitCell_c: Mapped[float | None] = _float()
    unitCell_alpha: Mapped[float | None] = _float()
    unitCell_beta: Mapped[float | None] = _float()
    unitCell_gamma: Mapped[float | None] = _float()


class ScreeningStrategy(Base):
    __tablename__ = "ScreeningStrategy"
    screeningStrategyId: Mapped[int] = _pk()
    screeningOutputId: Mapped[int] = mapped_column(
        ForeignKey("ScreeningOutput.screeningOutputId"), nullable=False, index=True
    )
    program: Mapped[str | None] = _str(45)
    phiStart: Mapped[float | None] = _float()
    phiEnd: Mapped[float | None] = _float()
    rotation: Mapped[float | None] = _float()
    exposureTime: Mapped[float | None] = _float()
    resolution: Mapped[float | None] = _float()
    completeness: Mapped[float | None] = _float()
    multiplicity: Mapped[float | None] = _float()
    anomalous: Mapped[bool | None] = mapped_column(Boolean)
    rankingResolution: Mapped[float | None] = _float()
    transmission: Mapped[float | None] = _float()


class ScreeningStrategyWedge(Base):
    __tablename__ = "ScreeningStrategyWedge"
    screeningStrategyWedgeId: Mapped[int] = _pk()
    screeningStrategyId: Mapped[int] = mapped_column(
        ForeignKey("ScreeningStrategy.screeningStrategyId"), nullable=False, index=True
    )
    wedgeNumber: Mapped[int | None] = _int()
    resolution: Mapped[float | None] = _float()
    completeness: Mapped[float | None] = _float()
    multiplicity: Mapped[float | None] = _float()
    doseTotal: Mapped[float | None] = _float()
    numberOfImages: Mapped[int | None] = _int()
    phi: Mapped[float | None] = _float()
    kappa: Mapped[float | None] = _float()
    chi: Mapped[float | None] = _float()
    wavelength: Mapped[float | None] = _float()
    comments: Mapped[str | None] = _text()


class ScreeningStrategySubWedge(Base):
    __tablename__ = "ScreeningStrategySubWedge"
    screeningStrategySubWedgeId: Mapped[int] = _pk()
    screeningStrategyWedgeId: Mapped[int] = mapped_column(
        ForeignKey("ScreeningStrategyWedge.screeningStrategyWedgeId"), nullable=False, index=True
    )
    subWedgeNumber: Mapped[int | None] = _int()
    rotationAxis: Mapped[str | None] = _str(45)
    axisStart: Mapped[float | None] = _float()
    axisEnd: Mapped[float | None] = _float()
    oscillationRange: Mapped[float | None] = _float()
    exposureTime: Mapped[float | None] = _float()
    transmission: Mapped[float | None] = _float()
    numberOfImages: Mapped[int | None] = _int()
    completeness: Mapped[float | None] = _float()
    multiplicity: Mapped[float | None] = _float()
    doseTotal: Mapped[float | None] = _float()
    comments: Mapped[str | None] = _text()


# -- processing --------------------------------------------------------------------------------


class AutoProcProgram(Base):
    __tablename__ = "AutoProcProgram"
    autoProcProgramId: Mapped[int] = _pk()
    processingPrograms: Mapped[str | None] = _str()
    processingCommandLine: Mapped[str | None] = _text()
    processingStatus: Mapped[str | None] = _str(45)
    processingMessage: Mapped[str | None] = _text()
    processingStartTime: Mapped[datetime | None] = _time()
    processingEndTime: Mapped[datetime | None] = _time()
    recordTimeStamp: Mapped[datetime] = _stamp()


class AutoProcIntegration(Base):
    __tablename__ = "AutoProcIntegration"
    autoProcIntegrationId: Mapped[int] = _pk()
    dataCollectionId: Mapped[int] = mapped_column(
        ForeignKey("DataCollection.dataCollectionId"), nullable=False, index=True
    )
    autoProcProgramId: Mapped[int] = mapped_column(
        ForeignKey("AutoProcProgram.autoProcProgramId"), nullable=False, index=True
    )


class AutoProc(Base):
    __tablename__ = "AutoProc"
    autoProcId: Mapped[int] = _pk()
    autoProcProgramId: Mapped[int] = mapped_column(
        ForeignKey("AutoProcProgram.autoProcProgramId"), nullable=False, index=True
    )
    spaceGroup: Mapped[str | None] = _str(45)
    refinedCell_a: Mapped[float | None] = _float()
    refinedCell_b: Mapped[float | None] = _float()
    refinedCell_c: Mapped[float | None] = _float()
    refinedCell_alpha: Mapped[float | None] = _float()
    refinedCell_beta: Mapped[float | None] = _float()
    refinedCell_gamma: Mapped[float | None] = _float()


class AutoProcScaling(Base):
    __tablename__ = "AutoProcScaling"
    autoProcScalingId: Mapped[int] = _pk()
    autoProcId: Mapped[int] = mapped_column(
        ForeignKey("AutoProc.autoProcId"), nullable=False, index=True
    )
    recordTimeStamp: Mapped[datetime] = _stamp()


class AutoProcScalingStatistics(Base):
    __tablename__ = "AutoProcScalingStatistics"
    autoProcScalingStatisticsId: Mapped[int] = _pk()
    autoProcScalingId: Mapped[int] = mapped_column(
        ForeignKey("AutoProcScaling.autoProcScalingId"), nullable=False, index=True
    )
    scalingStatisticsType: Mapped[str | None] = _str(45)
    resolutionLimitLow: Mapped[float | None] = _float()
    resolutionLimitHigh: Mapped[float | None] = _float()
    rMerge: Mapped[float | None] = _float()
    rMeasAllIPlusIMinus: Mapped[float | None] = _float()
    meanIOverSigI: Mapped[float | None] = _float()
    completeness: Mapped[float | None] = _float()
    multiplicity: Mapped[float | None] = _float()
    ccHalf: Mapped[float | None] = _float()
    anomalousCompleteness: Mapped[float | None] = _float()
    anomalousMultiplicity: Mapped[float | None] = _float()
    nTotalObservations: Mapped[int | None] = _int()
    nTotalUniqueObservations: Mapped[int | None] = _int()


# -- ours --------------------------------------------------------------------------------------


class IdempotencyKey(Base):
    """Idempotency-Key of a POST -> the answer it got, so a retried POST creates nothing."""

    __tablename__ = "lims_idempotency_key"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    request: Mapped[str] = mapped_column(String(1024), nullable=False)
    statusCode: Mapped[int] = mapped_column(Integer, nullable=False)
    response: Mapped[dict[str, object]] = mapped_column(JSON, nullable=False)
    recordTimeStamp: Mapped[datetime] = _stamp()


ISPYB_TABLES: tuple[type[Base], ...] = (
    Proposal,
    BLSession,
    Protein,
    Crystal,
    Container,
    BLSample,
    Workflow,
    WorkflowStep,
    WorkflowMesh,
    DataCollectionGroup,
    Position,
    DataCollection,
    GridInfo,
    ImageQualityIndicators,
    XrayCentring,
    XrayCentringResult,
    RobotAction,
    Screening,
    ScreeningOutput,
    ScreeningOutputLattice,
    ScreeningStrategy,
    ScreeningStrategyWedge,
    ScreeningStrategySubWedge,
    AutoProcProgram,
    AutoProcIntegration,
    AutoProc,
    AutoProcScaling,
    AutoProcScalingStatistics,
)
"""The ISPyB tables, parents before children (the order ``GET /counts`` reports)."""
