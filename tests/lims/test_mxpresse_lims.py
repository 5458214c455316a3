"""Whole MXPressE runs on the simulated beamline writing to the real embedded LIMS over HTTP:
every ISPyB record of a sample is there with its links and values; a LIMS stopped in the
middle of the night loses nothing and duplicates nothing once it is back; a wrong token
writes nothing and the sample is collected anyway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bes.engine import RunContext, WorkflowResult, run_workflow
from lims.client import LimsClient
from lims.service.embedded import EmbeddedLims
from tests.conftest import make_sim_beamline
from tests.lims.conftest import FAST
from tests.lims.helpers import Restartable, wait_until
from tests.lims.mxpresse import table_counts

SUCCESS = "Data collection successful"
PROPOSAL = ("mx", "1234")
LOOP = {"centre_mm": [0.0, 0.08, -0.03]}
CRYSTAL = {"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}
SHEET = {
    "pins": [{"location": f"1:{pin}", "loop": LOOP, "crystals": [CRYSTAL]} for pin in (1, 2, 3)]
}
"""Three alike pins with a good crystal each: the same records per sample."""
SHARED_TABLES = ("Proposal", "BLSession", "Container")
"""Records the samples of one puck share."""
STEPS = ["LoopCentring", "MeshScan", "MeshScan", "XrayCentring", "Characterisation"]


def run_mxpresse(client: LimsClient, location: str, data_root: Path) -> WorkflowResult:
    """One sample through mxpresse with ``client`` as the run's LIMS (collections of 20 frames
    instead of the strategy's 1800, to keep the test fast)."""
    beamline = make_sim_beamline(world={"sheet": SHEET})
    result = run_workflow(
        "mxpresse",
        {
            "sample": location,
            "data_root": str(data_root),
            "proposal": "".join(PROPOSAL),
            "oscillation_deg": 1.0,
            "total_range_deg": 20.0,
        },
        RunContext(beamline=beamline, lims=client),
    )
    assert result.status == "finished", result.detail
    assert result.outputs["outcome"] == "collected"
    return result


def one(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


def verify_sample(lims: LimsClient, result: WorkflowResult, location: str) -> dict[str, int]:
    """Every record mxpresse wrote for the sample at ``location``, linked to its parents and
    holding what the run found; answers the number of records per table of this sample."""
    puck, pin = (int(n) for n in location.split(":"))
    outputs = result.node_outputs
    summary = result.outputs["summary"]
    assert summary["lims_errors"] == []

    proposal = one(lims.records("proposals", proposalCode=PROPOSAL[0], proposalNumber=PROPOSAL[1]))
    session = one(lims.records("sessions", proposalId=proposal["proposalId"], visit_number=1))
    session_id = session["sessionId"]
    assert session["beamLineName"] == "SIM-MX1"
    container = one(lims.records("containers", sessionId=session_id, code=f"puck-{puck:02d}"))
    assert container["sampleChangerLocation"] == str(puck)
    sample = one(lims.records("samples", containerId=container["containerId"], location=str(pin)))
    sample_id = sample["blSampleId"]
    assert (sample["name"], sample["blSampleStatus"], sample["comments"]) == (
        f"{puck}-{pin}",
        "collected",
        summary["reason"],
    )

    actions = lims.records("robot-actions", blsampleId=sample_id)
    assert [
        (a["actionType"], a["status"], a["blsessionId"], a["dewarLocation"], a["containerLocation"])
        for a in actions
    ] == [
        ("LOAD", "SUCCESS", session_id, puck, pin),
        ("UNLOAD", "SUCCESS", session_id, puck, pin),
    ]

    groups = lims.records("data-groups", blSampleId=sample_id)
    assert [g["experimentType"] for g in groups] == ["Mesh", "Mesh", "Characterization", "OSC"]
    workflow_id = groups[0]["workflowId"]
    assert all(g["sessionId"] == session_id and g["workflowId"] == workflow_id for g in groups)
    assert all(g["endTime"] >= g["startTime"] for g in groups)
    mesh_first, mesh_second, characterisation, osc = (g["dataCollectionGroupId"] for g in groups)
    workflow = lims.get("workflows", workflow_id)
    assert (workflow["workflowType"], workflow["status"], workflow["workflowTitle"]) == (
        "MXPressE",
        "Success",
        f"mxpresse {puck}-{pin}",
    )

    # -- workflow steps: what each stage found
    steps = lims.records("workflow-steps", workflowId=workflow_id)
    assert [(s["workflowStepType"], s["status"]) for s in steps] == [
        (name, "Success") for name in [*STEPS, "DataCollection"]
    ]
    scores = [outputs["mesh_first"]["max_score"], outputs["mesh_second"]["max_score"]]
    assert [s["maxDozorScore"] for s in steps[1:3]] == pytest.approx(scores, abs=1e-3)
    centring = steps[3]
    assert [centring[f"crystalSize{axis}"] for axis in "XYZ"] == pytest.approx(
        summary["crystal"]["size_um"], abs=0.05
    )
    assert centring["maxDozorScore"] == pytest.approx(max(scores), abs=1e-3)

    # -- the two meshes: group, collection, grid (cols x rows), one score per frame
    plan = outputs["plan_mesh"]["mesh"]
    meshes = lims.records("workflow-meshes", workflowId=workflow_id)
    n_indicators = 0
    for group_id, workflow_mesh, rows, omega, score in zip(
        (mesh_first, mesh_second), meshes, plan["rows"], plan["omega_deg"], scores, strict=True
    ):
        n_frames = rows * plan["cols"]
        collection = one(lims.records("data-collections", dataCollectionGroupId=group_id))
        collection_id = collection["dataCollectionId"]
        assert (collection["numberOfImages"], collection["runStatus"]) == (n_frames, SUCCESS)
        assert (collection["omegaStart"], collection["axisRange"]) == (omega, 0.0)
        grid = one(lims.records("grids", dataCollectionId=collection_id))
        assert (grid["steps_x"], grid["steps_y"], grid["meshAngle"], grid["snaked"]) == (
            plan["cols"],
            rows,
            omega,
            True,
        )
        assert grid["dx_mm"] == grid["dy_mm"] == plan["box_um"] / 1000
        assert grid["workflowMeshId"] == workflow_mesh["workflowMeshId"]
        indicators = sorted(
            lims.records("image-quality-indicators", dataCollectionId=collection_id),
            key=lambda row: row["imageNumber"],
        )
        assert [row["imageNumber"] for row in indicators] == list(range(1, n_frames + 1))
        best = max(row["dozor_score"] for row in indicators)
        assert best == pytest.approx(score, abs=1e-3)
        assert workflow_mesh["value1"] == pytest.approx(score, abs=1e-3)
        assert indicators[workflow_mesh["bestImageId"] - 1]["dozor_score"] == best
        n_indicators += n_frames

    # -- X-ray centring from the two meshes, on the second mesh's group
    assert lims.records("xray-centrings", dataCollectionGroupId=mesh_first) == []
    xray = one(lims.records("xray-centrings", dataCollectionGroupId=mesh_second))
    assert (xray["status"], xray["xrayCentringType"]) == ("success", "3d")
    regions = lims.records("xray-centring-results", xrayCentringId=xray["xrayCentringId"])
    assert len(regions) == outputs["centre_crystal"]["n_crystals"] >= 1
    assert regions[0]["numberOfVoxels"] == outputs["centre_crystal"]["crystals"][0]["n_voxels"]

    # -- characterisation: two reference wedges, screening -> output -> strategy chain
    crystal_at = summary["crystal"]["position"]
    references = lims.records("data-collections", dataCollectionGroupId=characterisation)
    assert [(c["numberOfImages"], c["runStatus"]) for c in references] == [(5, SUCCESS)] * 2
    for reference in references:
        position = lims.get("positions", reference["startPositionId"])
        assert (position["posX"], position["posY"], position["posZ"]) == pytest.approx(
            (crystal_at["phiy"], crystal_at["sampx"], crystal_at["sampy"]), abs=1e-5
        )
    found = summary["characterisation"]
    strategy = summary["strategy"]
    screening = one(lims.records("screenings", dataCollectionId=references[0]["dataCollectionId"]))
    output = one(lims.records("screening-outputs", screeningId=screening["screeningId"]))
    assert output["resolutionObtained"] == pytest.approx(found["resolution_a"], abs=0.005)
    assert output["mosaicity"] == pytest.approx(found["mosaicity_deg"], abs=5e-4)
    assert output["strategySuccess"] is True
    output_id = output["screeningOutputId"]
    assert lims.records("screening-output-lattices", screeningOutputId=output_id) == []
    planned = one(lims.records("screening-strategies", screeningOutputId=output_id))
    assert (planned["phiStart"], planned["phiEnd"], planned["rotation"]) == pytest.approx(
        (
            strategy["omega_start_deg"],
            strategy["omega_start_deg"] + strategy["total_range_deg"],
            strategy["oscillation_deg"],
        ),
        abs=1e-3,
    )
    assert planned["transmission"] == pytest.approx(strategy["transmission"] * 100, abs=1e-3)
    wedge = one(
        lims.records(
            "screening-strategy-wedges", screeningStrategyId=planned["screeningStrategyId"]
        )
    )
    assert wedge["numberOfImages"] == strategy["n_frames"]
    assert wedge["doseTotal"] == pytest.approx(strategy["dose_mgy"], abs=1e-3)
    sub_wedge = one(
        lims.records(
            "screening-strategy-sub-wedges",
            screeningStrategyWedgeId=wedge["screeningStrategyWedgeId"],
        )
    )
    assert (sub_wedge["numberOfImages"], sub_wedge["rotationAxis"]) == (
        strategy["n_frames"],
        "Omega",
    )

    # -- the data collection, its start position and the processing summary
    collected = outputs["collect"]["collections"][0]
    data = one(lims.records("data-collections", dataCollectionGroupId=osc))
    assert (data["numberOfImages"], data["runStatus"]) == (collected["n_frames"], SUCCESS)
    assert collected["n_frames"] == 20
    assert (data["axisStart"], data["axisEnd"], data["axisRange"]) == pytest.approx(
        (
            collected["omega_start_deg"],
            collected["omega_start_deg"] + 20.0,
            collected["oscillation_deg"],
        )
    )
    assert data["imagePrefix"] == f"dc-{puck}-{pin}" and data["imageSuffix"] == "h5"
    start = lims.get("positions", data["startPositionId"])
    at = collected["positions"]
    assert (start["posX"], start["posY"], start["posZ"]) == pytest.approx(
        (at["phiy"], at["sampx"], at["sampy"]), abs=1e-5
    )
    processing = collected["processing"]
    program = one(lims.records("auto-proc-programs", dataCollectionId=data["dataCollectionId"]))
    assert (program["processingPrograms"], program["processingStatus"]) == (
        processing["program"],
        "SUCCESS",
    )
    assert program["processingMessage"] == f"simulated: {processing['message']}"
    auto_proc = one(lims.records("auto-procs", autoProcProgramId=program["autoProcProgramId"]))
    assert auto_proc["spaceGroup"] == processing["space_group"]
    assert [auto_proc[f"refinedCell_{axis}"] for axis in ("a", "b", "c")] == processing["cell"][:3]
    scaling = one(lims.records("auto-proc-scalings", autoProcId=auto_proc["autoProcId"]))
    shells = {
        row["scalingStatisticsType"]: row
        for row in lims.records(
            "auto-proc-scaling-statistics", autoProcScalingId=scaling["autoProcScalingId"]
        )
    }
    assert set(shells) == {"overall", "outerShell"}
    assert shells["overall"]["resolutionLimitHigh"] == processing["resolution_a"]
    assert shells["overall"]["completeness"] == pytest.approx(processing["completeness"] * 100)
    assert shells["outerShell"]["ccHalf"] == pytest.approx(processing["cc_half"] * 100)
    assert shells["outerShell"]["meanIOverSigI"] == processing["i_over_sigma"]

    return {
        "BLSample": 1,
        "RobotAction": 2,
        "Workflow": 1,
        "WorkflowStep": len(steps),
        "WorkflowMesh": len(meshes),
        "DataCollectionGroup": len(groups),
        "DataCollection": 2 + len(references) + 1,
        "GridInfo": 2,
        "ImageQualityIndicators": n_indicators,
        "XrayCentring": 1,
        "XrayCentringResult": len(regions),
        "Position": len(references) + 1,
        "Screening": 1,
        "ScreeningOutput": 1,
        "ScreeningStrategy": 1,
        "ScreeningStrategyWedge": 1,
        "ScreeningStrategySubWedge": 1,
        "AutoProcProgram": 1,
        "AutoProcIntegration": 1,
        "AutoProc": 1,
        "AutoProcScaling": 1,
        "AutoProcScalingStatistics": len(shells),
    }


def test_a_full_mxpresse_run_leaves_every_record_in_the_lims(
    client: LimsClient, reader: LimsClient, tmp_path: Path
) -> None:
    result = run_mxpresse(client, "1:1", tmp_path / "data")

    assert client.pending() == 0 and client.failed() == []
    per_sample = verify_sample(reader, result, "1:1")
    assert table_counts(reader) == {**dict.fromkeys(SHARED_TABLES, 1), **per_sample}


def test_a_lims_stopped_mid_night_gets_every_record_once_when_it_is_back(
    restartable: Restartable, tmp_path: Path
) -> None:
    server = restartable.server
    results: dict[str, WorkflowResult] = {}
    with LimsClient(server.url, server.token, outbox=tmp_path / "outbox.sqlite", **FAST) as client:
        results["1:1"] = run_mxpresse(client, "1:1", tmp_path / "data")
        assert client.pending() == 0
        one_sample = table_counts(client)

        restartable.stop()
        results["1:2"] = run_mxpresse(client, "1:2", tmp_path / "data")  # collected anyway
        assert client.down and client.pending() > 0  # sample 2's writes wait in the outbox

        restartable.start()
        results["1:3"] = run_mxpresse(client, "1:3", tmp_path / "data")
        client.flush()
        wait_until(
            lambda: client.pending() == 0, timeout_s=20.0, poll_s=0.02
        )  # the replay thread may hold the last ones
        assert client.failed() == [] and not client.down

    with LimsClient(restartable.server.url, restartable.server.reader_token, **FAST) as reader:
        for location, result in results.items():
            per_sample = verify_sample(reader, result, location)
            assert {**dict.fromkeys(SHARED_TABLES, 1), **per_sample} == one_sample
        assert table_counts(reader) == {
            table: count if table in SHARED_TABLES else 3 * count
            for table, count in one_sample.items()
        }


def test_a_wrong_token_writes_nothing_and_the_sample_is_collected_anyway(
    lims: EmbeddedLims, reader: LimsClient, tmp_path: Path
) -> None:
    wrong = "not-the-token-0123456789"
    with LimsClient(lims.url, wrong, outbox=tmp_path / "outbox.sqlite", **FAST) as client:
        beamline = make_sim_beamline(world={"sheet": SHEET})
        result = run_workflow(
            "mxpresse",
            {"sample": "1:1", "data_root": str(tmp_path / "data"), "oscillation_deg": 1.0},
            RunContext(beamline=beamline, lims=client),
        )
        assert client.pending() > 0  # kept for a flush with the right token

    assert result.status == "finished" and result.outputs["outcome"] == "collected"
    errors = result.outputs["summary"]["lims_errors"]
    assert errors and "401" in errors[0] and "unknown bearer token" in errors[0]
    assert table_counts(reader) == {}
