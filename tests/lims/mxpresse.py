"""The LIMS records of one MXPressE-like sample, written through the client, and the checks
that every record is in the LIMS with the right links and values.

``write_run`` calls ``checkpoint(name)`` between the stages, so a test can stop and restart
the LIMS in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lims.client import Handle, LimsClient, Visit
from lims.client import records as r

T0 = datetime(2025, 3, 1, 22, 0, 0)
MESH_STEPS = (20, 20)
MESH_IMAGES = MESH_STEPS[0] * MESH_STEPS[1]
CRYSTAL_SIZE_UM = (48.0, 36.0, 20.0)
MAX_SCORE = 41.5
SUCCESS = "Data collection successful"

RUN_ROWS = {
    "Workflow": 1,
    "WorkflowStep": 4,
    "WorkflowMesh": 1,
    "DataCollectionGroup": 3,
    "DataCollection": 4,
    "GridInfo": 2,
    "Position": 1,
    "ImageQualityIndicators": 2 * MESH_IMAGES,
    "XrayCentring": 1,
    "XrayCentringResult": 1,
    "RobotAction": 2,
    "Screening": 1,
    "ScreeningOutput": 1,
    "ScreeningOutputLattice": 1,
    "ScreeningStrategy": 1,
    "ScreeningStrategyWedge": 1,
    "ScreeningStrategySubWedge": 1,
    "AutoProcProgram": 1,
    "AutoProcIntegration": 1,
    "AutoProc": 1,
    "AutoProcScaling": 1,
    "AutoProcScalingStatistics": 3,
}
"""Rows one run adds, per table."""
SEED_ROWS = {
    "Proposal": 1,
    "BLSession": 1,
    "Protein": 1,
    "Crystal": 1,
    "Container": 1,
    "BLSample": 1,
}
"""Rows :func:`seed_session` adds."""


def expected_counts() -> dict[str, int]:
    return {**SEED_ROWS, **RUN_ROWS}


def score(image: int, omega: int) -> float:
    """A made-up DOZOR-like score with one peak (the crystal) per face."""
    x, y = (image - 1) % MESH_STEPS[0], (image - 1) // MESH_STEPS[0]
    return round(MAX_SCORE / (1.0 + (x - 9) ** 2 + (y - 7 - omega // 90) ** 2), 3)


@dataclass
class Run:
    """Handles of everything one run wrote."""

    visit: Visit
    sample: Handle
    workflow: Handle | None = None
    steps: list[Handle] = field(default_factory=list)
    load: Handle | None = None
    unload: Handle | None = None
    mesh_group: Handle | None = None
    mesh_collections: list[Handle] = field(default_factory=list)
    grids: list[Handle] = field(default_factory=list)
    workflow_mesh: Handle | None = None
    xray_centring: Handle | None = None
    characterisation_group: Handle | None = None
    characterisation: Handle | None = None
    position: Handle | None = None
    screening: list[Handle] = field(default_factory=list)
    osc_group: Handle | None = None
    osc: Handle | None = None
    program: Handle | None = None

    def handles(self) -> list[Handle]:
        out: list[Handle] = []
        for value in vars(self).values():
            if isinstance(value, Handle):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v for v in value if isinstance(v, Handle))
        return out


def seed_session(
    client: LimsClient, proposal: str = "mx1234", visit: int = 1
) -> tuple[Visit, Handle]:
    """Proposal, session, a puck and one lysozyme sample, as a sample sheet would load them."""
    code = proposal.rstrip("0123456789")
    client.add_proposal(r.Proposal(proposalCode=code, proposalNumber=proposal[len(code) :]))
    client.add_session(
        proposal, r.BLSession(visit_number=visit, beamLineName="SIM-MX", startDate=T0)
    )
    where = Visit(proposal, visit)
    protein = client.add_protein(proposal, r.Protein(acronym="lyso", name="lysozyme"))
    crystal = client.add_crystal(
        protein, r.Crystal(spaceGroup="P43212", cell_a=79.1, cell_b=79.1, cell_c=37.9)
    )
    puck = client.add_container(
        where, r.Container(code="puck-01", barcode="UP0001", sampleChangerLocation="1", capacity=16)
    )
    sample = client.add_sample(
        puck, r.BLSample(name="lyso-1", code="DM0101", location="1"), crystal=crystal
    )
    return where, sample


def write_run(
    client: LimsClient,
    visit: Visit,
    sample: Handle,
    checkpoint: Callable[[str], None] = lambda name: None,
) -> Run:
    run = Run(visit, sample)
    t = T0
    run.load = client.add_robot_action(
        visit,
        r.RobotAction(
            actionType="LOAD", startTimestamp=t, containerLocation=1, sampleBarcode="DM0101"
        ),
        sample=sample,
    )
    client.update_robot_action(
        run.load, r.RobotActionUpdate(endTimestamp=t + timedelta(seconds=38), status="SUCCESS")
    )
    run.workflow = client.add_workflow(
        r.Workflow(workflowType="MXPressE", workflowTitle="MXPressE lyso-1", status="Started")
    )
    checkpoint("workflow")

    run.mesh_group = client.add_data_group(
        visit,
        r.DataCollectionGroup(experimentType="Mesh", startTime=t + timedelta(seconds=60)),
        sample=sample,
        workflow=run.workflow,
    )
    for omega in (0, 90):
        collection = client.add_data_collection(
            run.mesh_group,
            r.DataCollection(
                omegaStart=float(omega),
                axisStart=float(omega),
                axisRange=0.0,
                numberOfImages=MESH_IMAGES,
                exposureTime=0.004,
                imageDirectory="/data/mx1234-1/lyso-1/mesh",
                imagePrefix=f"mesh_{omega}",
                fileTemplate=f"mesh_{omega}_%06d.h5",
                runStatus="Running",
            ),
        )
        run.mesh_collections.append(collection)
        run.grids.append(
            client.add_grid_info(
                collection,
                r.GridInfo(
                    dx_mm=0.02,
                    dy_mm=0.02,
                    steps_x=MESH_STEPS[0],
                    steps_y=MESH_STEPS[1],
                    meshAngle=float(omega),
                    orientation="horizontal",
                    snaked=True,
                ),
            )
        )
        client.add_image_quality_indicators(
            collection,
            [
                r.ImageQualityIndicators(
                    imageNumber=i,
                    spotTotal=int(10 * score(i, omega)),
                    goodBraggCandidates=int(8 * score(i, omega)),
                    dozor_score=score(i, omega),
                    method2Res=2.0,
                )
                for i in range(1, MESH_IMAGES + 1)
            ],
        )
        client.update_data_collection(collection, r.DataCollection(runStatus=SUCCESS))
        checkpoint(f"mesh {omega}")

    run.workflow_mesh = client.add_workflow_mesh(
        run.workflow, r.WorkflowMesh(bestImageId=150, value1=MAX_SCORE, cartographyPath="/x.png")
    )
    run.xray_centring = client.add_xray_centring(
        run.mesh_group,
        r.XrayCentring(
            status="success",
            xrayCentringType="3d",
            results=[
                r.XrayCentringResult(
                    centreOfMassX=9.2,
                    centreOfMassY=7.4,
                    centreOfMassZ=8.1,
                    maxVoxelX=9,
                    maxVoxelY=7,
                    maxVoxelZ=8,
                    numberOfVoxels=27,
                    totalCount=812.0,
                    boundingBoxMinX=8,
                    boundingBoxMaxX=11,
                    boundingBoxMinY=6,
                    boundingBoxMaxY=8,
                    boundingBoxMinZ=7,
                    boundingBoxMaxZ=9,
                )
            ],
        ),
    )
    client.update_data_group(
        run.mesh_group, r.DataCollectionGroupUpdate(endTime=t + timedelta(minutes=2))
    )
    for step_type in ("MeshScan", "XrayCentring"):
        run.steps.append(
            client.add_workflow_step(
                run.workflow,
                r.WorkflowStep(
                    workflowStepType=step_type,
                    status="Success",
                    crystalSizeX=CRYSTAL_SIZE_UM[0],
                    crystalSizeY=CRYSTAL_SIZE_UM[1],
                    crystalSizeZ=CRYSTAL_SIZE_UM[2],
                    maxDozorScore=MAX_SCORE,
                ),
            )
        )
    checkpoint("xray centring")

    run.characterisation_group = client.add_data_group(
        visit,
        r.DataCollectionGroup(experimentType="Characterization"),
        sample=sample,
        workflow=run.workflow,
    )
    run.characterisation = client.add_data_collection(
        run.characterisation_group,
        r.DataCollection(
            numberOfImages=2, axisStart=0.0, axisRange=0.1, overlap=-89.9, exposureTime=0.02
        ),
    )
    run.position = client.add_position(
        run.characterisation, r.Position(posX=0.12, posY=-0.03, posZ=0.4)
    )
    screening = client.add_screening(
        run.characterisation, r.Screening(programVersion="bes strategy 1")
    )
    output = client.add_screening_output(
        screening,
        r.ScreeningOutput(
            resolutionObtained=1.8,
            mosaicity=0.12,
            numSpotsFound=350,
            indexingSuccess=True,
            strategySuccess=True,
        ),
    )
    lattice = client.add_screening_output_lattice(
        output, r.ScreeningOutputLattice(spaceGroup="P43212", unitCell_a=79.2, unitCell_c=38.0)
    )
    strategy = client.add_screening_strategy(
        output, r.ScreeningStrategy(resolution=1.8, rankingResolution=1.7)
    )
    wedge = client.add_screening_strategy_wedge(
        strategy, r.ScreeningStrategyWedge(wedgeNumber=1, doseTotal=4.2)
    )
    sub_wedge = client.add_screening_strategy_sub_wedge(
        wedge,
        r.ScreeningStrategySubWedge(
            subWedgeNumber=1,
            axisStart=0.0,
            axisEnd=180.0,
            oscillationRange=0.1,
            exposureTime=0.02,
            transmission=25.0,
            numberOfImages=1800,
            completeness=0.995,
            multiplicity=6.8,
            doseTotal=4.2,
        ),
    )
    run.screening = [screening, output, lattice, strategy, wedge, sub_wedge]
    run.steps.append(
        client.add_workflow_step(
            run.workflow, r.WorkflowStep(workflowStepType="Characterisation", status="Success")
        )
    )
    checkpoint("characterisation")

    run.osc_group = client.add_data_group(
        visit, r.DataCollectionGroup(experimentType="OSC"), sample=sample, workflow=run.workflow
    )
    run.osc = client.add_data_collection(
        run.osc_group,
        r.DataCollection(
            numberOfImages=1800, axisStart=0.0, axisEnd=180.0, axisRange=0.1, runStatus="Running"
        ),
    )
    client.update_data_collection(
        run.osc, r.DataCollection(runStatus=SUCCESS, endTime=t + timedelta(minutes=5))
    )
    run.program = client.add_auto_proc_program(
        run.osc, r.AutoProcProgram(processingPrograms="bes-quick", processingStatus="RUNNING")
    )
    client.update_auto_proc_program(
        run.program,
        r.AutoProcProgram(
            processingStatus="SUCCESS",
            summary=r.AutoProcSummary(
                spaceGroup="P43212",
                refinedCell_a=79.12,
                refinedCell_c=37.95,
                statistics=[
                    r.AutoProcScalingStatistics(
                        scalingStatisticsType="overall", completeness=99.6, ccHalf=99.9
                    ),
                    r.AutoProcScalingStatistics(
                        scalingStatisticsType="innerShell", completeness=99.9
                    ),
                    r.AutoProcScalingStatistics(
                        scalingStatisticsType="outerShell",
                        completeness=98.1,
                        resolutionLimitHigh=1.8,
                    ),
                ],
            ),
        ),
    )
    run.steps.append(
        client.add_workflow_step(
            run.workflow, r.WorkflowStep(workflowStepType="DataCollection", status="Success")
        )
    )
    checkpoint("data collection")

    run.unload = client.add_robot_action(
        visit, r.RobotAction(actionType="UNLOAD", status="SUCCESS"), sample=sample
    )
    client.update_sample(sample, r.BLSampleUpdate(blSampleStatus="Collected"))
    client.update_workflow(
        run.workflow, r.WorkflowUpdate(status="Success", comments="crystal found")
    )
    return run


def verify_run(client: LimsClient, run: Run) -> None:
    """Every record of ``run`` is in the LIMS, linked to its parents, with its values."""
    assert all(h.id is not None for h in run.handles()), [h for h in run.handles() if h.id is None]
    session = client.records("sessions", visit_number=run.visit.number)[0]
    sample = client.get("samples", run.sample)
    assert sample["blSampleStatus"] == "Collected" and sample["name"] == "lyso-1"

    actions = client.records("robot-actions", blsampleId=run.sample)
    assert [(a["actionType"], a["status"]) for a in actions] == [
        ("LOAD", "SUCCESS"),
        ("UNLOAD", "SUCCESS"),
    ]
    assert {a["blsessionId"] for a in actions} == {session["sessionId"]}

    workflow = client.get("workflows", _id(run.workflow))
    assert (workflow["workflowType"], workflow["status"]) == ("MXPressE", "Success")
    steps = client.records("workflow-steps", workflowId=_id(run.workflow))
    assert [s["workflowStepType"] for s in steps] == [
        "MeshScan",
        "XrayCentring",
        "Characterisation",
        "DataCollection",
    ]
    centring = steps[1]
    assert (
        centring["crystalSizeX"],
        centring["crystalSizeY"],
        centring["crystalSizeZ"],
    ) == CRYSTAL_SIZE_UM
    assert centring["maxDozorScore"] == MAX_SCORE

    groups = client.records("data-groups", blSampleId=run.sample)
    assert [g["experimentType"] for g in groups] == ["Mesh", "Characterization", "OSC"]
    assert all(
        g["sessionId"] == session["sessionId"] and g["workflowId"] == _id(run.workflow)
        for g in groups
    )
    assert groups[0]["endTime"] == "2025-03-01T22:02:00"

    meshes = client.records("data-collections", dataCollectionGroupId=_id(run.mesh_group))
    assert [m["omegaStart"] for m in meshes] == [0.0, 90.0]
    assert all(m["runStatus"] == SUCCESS and m["numberOfImages"] == MESH_IMAGES for m in meshes)
    for omega, collection in zip((0, 90), run.mesh_collections, strict=True):
        grid = client.records("grids", dataCollectionId=collection)
        assert [(g["steps_x"], g["steps_y"], g["dx_mm"], g["meshAngle"]) for g in grid] == [
            (20, 20, 0.02, float(omega))
        ]
        indicators = client.page(
            "image-quality-indicators", dataCollectionId=collection, limit=1000
        )
        assert indicators.total == MESH_IMAGES
        assert [i["imageNumber"] for i in indicators.results] == list(range(1, MESH_IMAGES + 1))
        best = max(indicators.results, key=lambda i: i["dozor_score"])
        assert best["dozor_score"] == MAX_SCORE and best["imageNumber"] == 150 + 20 * (omega // 90)

    centrings = client.records("xray-centrings", dataCollectionGroupId=_id(run.mesh_group))
    assert [(c["status"], c["xrayCentringType"]) for c in centrings] == [("success", "3d")]
    results = client.records("xray-centring-results", xrayCentringId=_id(run.xray_centring))
    assert results[0]["centreOfMassX"] == 9.2 and results[0]["numberOfVoxels"] == 27
    assert client.records("workflow-meshes", workflowId=_id(run.workflow))[0]["value1"] == MAX_SCORE

    characterisation = client.get("data-collections", _id(run.characterisation))
    assert characterisation["dataCollectionGroupId"] == _id(run.characterisation_group)
    assert characterisation["startPositionId"] == _id(run.position)
    screening, output, lattice, strategy, wedge, sub_wedge = run.screening
    assert client.get("screenings", _id(screening))["dataCollectionId"] == _id(run.characterisation)
    assert client.get("screening-outputs", _id(output))["screeningId"] == _id(screening)
    assert client.get("screening-output-lattices", _id(lattice))["spaceGroup"] == "P43212"
    assert client.get("screening-strategies", _id(strategy))["screeningOutputId"] == _id(output)
    assert client.get("screening-strategy-wedges", _id(wedge))["screeningStrategyId"] == _id(
        strategy
    )
    sub = client.get("screening-strategy-sub-wedges", _id(sub_wedge))
    assert sub["screeningStrategyWedgeId"] == _id(wedge)
    assert (sub["axisStart"], sub["axisEnd"], sub["oscillationRange"], sub["numberOfImages"]) == (
        0.0,
        180.0,
        0.1,
        1800,
    )

    osc = client.get("data-collections", _id(run.osc))
    assert osc["runStatus"] == SUCCESS and osc["dataCollectionGroupId"] == _id(run.osc_group)
    programs = client.records("auto-proc-programs", dataCollectionId=_id(run.osc))
    assert [(p["autoProcProgramId"], p["processingStatus"]) for p in programs] == [
        (_id(run.program), "SUCCESS")
    ]
    auto_proc = client.records("auto-procs", autoProcProgramId=_id(run.program))
    assert [a["spaceGroup"] for a in auto_proc] == ["P43212"]
    scaling = client.records("auto-proc-scalings", autoProcId=auto_proc[0]["autoProcId"])
    shells = client.records(
        "auto-proc-scaling-statistics", autoProcScalingId=scaling[0]["autoProcScalingId"]
    )
    assert {s["scalingStatisticsType"]: s["completeness"] for s in shells} == {
        "overall": 99.6,
        "innerShell": 99.9,
        "outerShell": 98.1,
    }


def _id(handle: Handle | None) -> int:
    assert handle is not None and handle.id is not None, handle
    return handle.id


def table_counts(client: LimsClient) -> dict[str, Any]:
    """Rows per table, leaving out the empty ones."""
    return {name: count for name, count in client.counts().items() if count}
