"""``LimsWriter`` against a real LIMS over HTTP: what tasks write ends up in ISPyB records with
the right links and units, and a LIMS that refuses, is missing or is down never fails a task."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bes.cli import main
from bes.tasks.lims_records import (
    GridRecord,
    LimsWriter,
    QualityRow,
    ScanRecord,
    ScreeningRecord,
    StrategyRecord,
)
from lims.client import Handle, LimsClient, Visit
from lims.client import records as r
from lims.service.embedded import EmbeddedLims
from tests.lims.conftest import FAST
from tests.lims.helpers import Restartable, wait_until
from tests.lims.mxpresse import table_counts

T0 = datetime(2025, 3, 1, 22, 0, 0, tzinfo=UTC)
VISIT = Visit("mx1234", 1)
SUCCESS = "Data collection successful"
MESH = (12, 10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ident(handle: Handle | int | None) -> int:
    if isinstance(handle, int):
        return handle
    assert handle is not None and handle.id is not None, handle
    return handle.id


# -- the sample ----------------------------------------------------------------------------------


def test_for_sample_twice_creates_proposal_session_puck_and_pin_once(client: LimsClient) -> None:
    first = LimsWriter.for_sample(client, VISIT, "2:5", beamline_name="SIM-MX", barcode="DM0205")
    second = LimsWriter.for_sample(client, VISIT, "2:5", beamline_name="SIM-MX", barcode="DM0205")

    assert first.enabled and first.errors == [] and second.errors == []
    assert ident(first.sample) == ident(second.sample)
    counts = table_counts(client)
    assert (counts["Proposal"], counts["BLSession"], counts["Container"], counts["BLSample"]) == (
        1,
        1,
        1,
        1,
    )
    sample = client.get("samples", ident(first.sample))
    assert (sample["name"], sample["location"], sample["code"]) == ("sample-2-5", "5", "DM0205")
    puck = client.get("containers", sample["containerId"])
    assert (puck["code"], puck["sampleChangerLocation"]) == ("puck-02", "2")
    session = client.get("sessions", puck["sessionId"])
    assert (session["visit_number"], session["beamLineName"]) == (1, "SIM-MX")


def test_a_sample_loaded_from_a_sheet_is_used_as_it_is(client: LimsClient) -> None:
    client.add_proposal(r.Proposal(proposalCode="mx", proposalNumber="1234"))
    client.add_session("mx1234", r.BLSession(visit_number=1, beamLineName="SIM-MX"))
    puck = client.add_container(VISIT, r.Container(code="UP0001", sampleChangerLocation="1"))
    loaded = client.add_sample(puck, r.BLSample(name="lyso-1", code="DM0101", location="3"))

    writer = LimsWriter.for_sample(client, VISIT, "1:3")

    assert ident(writer.sample) == ident(loaded)
    assert client.get("samples", ident(loaded))["name"] == "lyso-1"  # not renamed
    assert table_counts(client)["Container"] == 1  # no second puck at place 1


def test_a_given_sample_id_is_used_without_writing_anything(client: LimsClient) -> None:
    writer = LimsWriter.for_sample(client, VISIT, "1:1", sample_lims_id=42)
    assert writer.sample == 42 and table_counts(client) == {}


# -- a whole workflow ----------------------------------------------------------------------------


def write_workflow(writer: LimsWriter) -> dict[str, Any]:
    """An MXPressE-like run: mesh, X-ray centring, characterisation, rotation, processing."""
    out: dict[str, Any] = {}
    writer.start_workflow("MXPressE", "MXPressE sample-1-3", log_path="/data/mx1234/log.txt")
    writer.robot_action("LOAD", start=at(0), end=at(38), status="SUCCESS")

    out["mesh_group"] = group = writer.start_group("Mesh", start=at(60))
    out["mesh"] = mesh = writer.add_collection(
        group,
        ScanRecord(
            start=at(61),
            omega_start_deg=0.0,
            oscillation_deg=0.0,
            n_images=MESH[0] * MESH[1],
            exposure_s=0.01,
            directory="/data/mx1234/sample-1-3/mesh",
            prefix="mesh",
            run_number=1,
            suffix="h5",
            file_template="mesh_1_%06d.h5",
            wavelength_a=0.9763,
            resolution_a=2.0,
            detector_distance_mm=250.0,
            beam_centre_mm=(77.1, 81.3),
            transmission=0.07,
            beam_size_um=(50.0, 20.0),
            flux_ph_s=2.5e12,
        ),
    )
    out["workflow_mesh"] = writer.add_workflow_mesh(
        best_image=57, values=(41.5, 3.0), cartography_path="/data/mx1234/mesh.png"
    )
    writer.add_grid(
        mesh,
        GridRecord(
            dx_mm=0.02,
            dy_mm=0.015,
            steps_x=MESH[0],
            steps_y=MESH[1],
            mesh_angle_deg=0.0,
            snaked=True,
            microns_per_pixel=(1.5, 1.5),
            snapshot_offset_px=(310.0, 220.0),
        ),
        workflow_mesh=out["workflow_mesh"],
    )
    writer.add_quality_indicators(
        mesh,
        [
            QualityRow(
                image_number=i,
                spot_total=i,
                good_bragg_candidates=i // 2,
                resolution_a=2.5 if i % 2 else None,
                total_integrated_signal=10.0 * i,
                score=41.5 if i == 57 else 0.1,
            )
            for i in range(1, MESH[0] * MESH[1] + 1)
        ],
    )
    writer.end_collection(mesh, end=at(80), run_status=SUCCESS)
    region = {
        "centre_of_mass": (5.2, 4.4, 3.1),
        "max_voxel": (5, 4, 3),
        "n_voxels": 27,
        "total_count": 812.0,
        "bounding_box_min": (4, 3, 2),
        "bounding_box_max": (7, 6, 4),
        "rank": 1,  # other keys (a CrystalRegion as a dict) are ignored
    }
    writer.add_xray_centring(
        group,
        status="success",
        kind="3d",
        regions=[region, {**region, "centre_of_mass": (9.0, 1.0, 1.0), "n_voxels": 3}],
    )
    writer.end_group(group, end=at(120))
    writer.add_step("MeshScan", "Success", crystal_size_um=(48.0, 36.0, 20.0), max_score=41.5)

    out["char_group"] = char_group = writer.start_group("Characterization", start=at(150))
    out["char"] = char = writer.add_collection(
        char_group,
        ScanRecord(
            start=at(151),
            omega_start_deg=0.0,
            oscillation_deg=0.1,
            overlap_deg=-89.9,
            n_images=2,
            exposure_s=0.02,
        ),
    )
    writer.add_position(char, {"phiy": 0.12, "sampx": -0.03, "sampy": 0.4, "omega": 0.0})
    writer.add_screening(
        char,
        ScreeningRecord(
            program="bes strategy 1",
            resolution_a=1.8,
            mosaicity_deg=0.12,
            n_spots=350,
            indexing_success=True,
            strategy_success=True,
            space_group="P43212",
            cell=(79.2, 79.2, 38.0, 90.0, 90.0, 90.0),
            strategy=StrategyRecord(
                omega_start_deg=10.0,
                total_range_deg=180.0,
                oscillation_deg=0.1,
                n_images=1800,
                exposure_s=0.02,
                transmission=0.25,
                resolution_a=1.8,
                dose_mgy=4.2,
                completeness=0.995,
                multiplicity=6.8,
            ),
        ),
    )
    writer.end_collection(char, end=at(160), run_status=SUCCESS)
    writer.end_group(char_group, end=at(160))

    out["osc_group"] = osc_group = writer.start_group("OSC", start=at(200))
    out["osc"] = osc = writer.add_collection(
        osc_group,
        ScanRecord(
            start=at(201),
            omega_start_deg=10.0,
            oscillation_deg=0.1,
            n_images=1800,
            exposure_s=0.02,
            transmission=0.25,
        ),
    )
    writer.add_position(osc, {"phiy": 0.12, "sampx": -0.03, "sampy": 0.4})
    writer.end_collection(osc, end=at(240), run_status=SUCCESS)
    writer.add_processing(
        osc,
        {
            "program": "bes-quick",
            "status": "success",
            "simulated": True,
            "message": "processed",
            "resolution_a": 1.8,
            "space_group": "P43212",
            "cell": [79.12, 79.12, 37.95, 90.0, 90.0, 90.0],
            "completeness": 0.996,
            "multiplicity": 6.9,
            "i_over_sigma": 2.1,
            "cc_half": 0.62,
            "r_merge": 0.41,
        },
        command="bes-quick /data/mx1234/osc_1_master.h5",
    )
    writer.end_group(osc_group, end=at(250))
    writer.robot_action("UNLOAD", start=at(300), end=at(330), status="SUCCESS")
    writer.end_workflow("Success", comments="crystal found", result_path="/data/mx1234/r.json")
    writer.sample_status("Collected")
    return out


def test_a_whole_workflow_leaves_every_record_linked_and_in_ispyb_units(
    client: LimsClient,
) -> None:
    writer = LimsWriter.for_sample(client, VISIT, "1:3", beamline_name="SIM-MX", barcode="DM0103")
    out = write_workflow(writer)

    assert writer.errors == [] and client.pending() == 0 and client.failed() == []
    assert_workflow_stored(client, writer, out)


def assert_workflow_stored(client: LimsClient, writer: LimsWriter, out: dict[str, Any]) -> None:
    """Every record of :func:`write_workflow` is in the LIMS once, linked and in ISPyB units."""
    sample_id = ident(writer.sample)
    workflow_id = ident(writer.workflow)
    sample = client.get("samples", sample_id)
    assert sample["blSampleStatus"] == "Collected"
    session_id = client.get("containers", sample["containerId"])["sessionId"]

    workflow = client.get("workflows", workflow_id)
    assert (workflow["workflowType"], workflow["status"], workflow["comments"]) == (
        "MXPressE",
        "Success",
        "crystal found",
    )
    assert workflow["logFilePath"] == "/data/mx1234/log.txt"  # the end kept what it did not set
    assert workflow["resultFilePath"] == "/data/mx1234/r.json"
    [step] = client.records("workflow-steps", workflowId=workflow_id)
    assert (step["workflowStepType"], step["crystalSizeY"], step["maxDozorScore"]) == (
        "MeshScan",
        36.0,
        41.5,
    )

    actions = client.records("robot-actions", blsampleId=sample_id)
    assert [(a["actionType"], a["status"]) for a in actions] == [
        ("LOAD", "SUCCESS"),
        ("UNLOAD", "SUCCESS"),
    ]
    load = actions[0]
    assert (load["dewarLocation"], load["containerLocation"], load["sampleBarcode"]) == (
        1,
        3,
        "DM0103",
    )
    assert (load["startTimestamp"], load["endTimestamp"]) == (
        "2025-03-01T22:00:00",
        "2025-03-01T22:00:38",
    )
    assert load["blsessionId"] == session_id

    groups = client.records("data-groups", blSampleId=sample_id)
    assert [g["experimentType"] for g in groups] == ["Mesh", "Characterization", "OSC"]
    assert [g["dataCollectionGroupId"] for g in groups] == [
        ident(out[k]) for k in ("mesh_group", "char_group", "osc_group")
    ]
    assert all(g["workflowId"] == workflow_id and g["sessionId"] == session_id for g in groups)
    assert (groups[0]["startTime"], groups[0]["endTime"]) == (
        "2025-03-01T22:01:00",
        "2025-03-01T22:02:00",
    )

    mesh = client.get("data-collections", ident(out["mesh"]))
    assert mesh["dataCollectionGroupId"] == ident(out["mesh_group"])
    assert mesh["runStatus"] == SUCCESS and mesh["endTime"] == "2025-03-01T22:01:20"
    assert mesh["transmission"] == 7.0  # percent, from 0.07
    assert (mesh["beamSizeAtSampleX"], mesh["beamSizeAtSampleY"]) == (0.05, 0.02)  # mm
    assert (mesh["xBeam"], mesh["yBeam"], mesh["imageSuffix"]) == (77.1, 81.3, "h5")
    assert (mesh["numberOfImages"], mesh["startImageNumber"], mesh["dataCollectionNumber"]) == (
        120,
        1,
        1,
    )
    [grid] = client.records("grids", dataCollectionId=ident(out["mesh"]))
    assert (grid["steps_x"], grid["steps_y"], grid["dy_mm"]) == (12, 10, 0.015)
    assert grid["snaked"] is True
    assert grid["workflowMeshId"] == ident(out["workflow_mesh"])
    [workflow_mesh] = client.records("workflow-meshes", workflowId=workflow_id)
    assert (workflow_mesh["bestImageId"], workflow_mesh["value1"], workflow_mesh["value2"]) == (
        57,
        41.5,
        3.0,
    )
    indicators = client.page(
        "image-quality-indicators", dataCollectionId=ident(out["mesh"]), limit=1000
    )
    assert indicators.total == 120
    best = max(indicators.results, key=lambda row: row["dozor_score"])
    assert (best["imageNumber"], best["spotTotal"], best["method1Res"]) == (57, 57, 2.5)

    [centring] = client.records("xray-centrings", dataCollectionGroupId=ident(out["mesh_group"]))
    assert (centring["status"], centring["xrayCentringType"]) == ("success", "3d")
    results = client.records("xray-centring-results", xrayCentringId=centring["xrayCentringId"])
    assert [(x["centreOfMassX"], x["numberOfVoxels"]) for x in results] == [(5.2, 27), (9.0, 3)]
    assert (results[0]["maxVoxelZ"], results[0]["boundingBoxMaxY"]) == (3, 6)

    char = client.get("data-collections", ident(out["char"]))
    assert char["overlap"] == -89.9 and char["axisEnd"] == pytest.approx(0.2)
    position = client.get("positions", char["startPositionId"])
    assert (position["posX"], position["posY"], position["posZ"]) == (0.12, -0.03, 0.4)
    [screening] = client.records("screenings", dataCollectionId=ident(out["char"]))
    assert screening["programVersion"] == "bes strategy 1"
    [output] = client.records("screening-outputs", screeningId=screening["screeningId"])
    assert (output["numSpotsFound"], output["indexingSuccess"], output["mosaicity"]) == (
        350,
        True,
        0.12,
    )
    output_id = output["screeningOutputId"]
    [lattice] = client.records("screening-output-lattices", screeningOutputId=output_id)
    assert (lattice["spaceGroup"], lattice["unitCell_c"]) == ("P43212", 38.0)
    [strategy] = client.records("screening-strategies", screeningOutputId=output_id)
    assert (strategy["phiStart"], strategy["phiEnd"], strategy["transmission"]) == (
        10.0,
        190.0,
        25.0,
    )
    [wedge] = client.records(
        "screening-strategy-wedges", screeningStrategyId=strategy["screeningStrategyId"]
    )
    assert (wedge["doseTotal"], wedge["numberOfImages"]) == (4.2, 1800)
    [sub] = client.records(
        "screening-strategy-sub-wedges", screeningStrategyWedgeId=wedge["screeningStrategyWedgeId"]
    )
    assert (sub["axisStart"], sub["axisEnd"], sub["oscillationRange"]) == (10.0, 190.0, 0.1)
    assert (sub["transmission"], sub["completeness"]) == (25.0, 99.5)  # percent

    osc = client.get("data-collections", ident(out["osc"]))
    assert osc["dataCollectionGroupId"] == ident(out["osc_group"]) and osc["runStatus"] == SUCCESS
    assert (osc["axisStart"], osc["axisEnd"], osc["rotationAxis"]) == (10.0, 190.0, "Omega")
    [program] = client.records("auto-proc-programs", dataCollectionId=ident(out["osc"]))
    assert (program["processingStatus"], program["processingPrograms"]) == ("SUCCESS", "bes-quick")
    assert program["processingMessage"] == "simulated: processed"
    assert program["processingCommandLine"].startswith("bes-quick ")
    [auto_proc] = client.records("auto-procs", autoProcProgramId=program["autoProcProgramId"])
    assert (auto_proc["spaceGroup"], auto_proc["refinedCell_c"]) == ("P43212", 37.95)
    [scaling] = client.records("auto-proc-scalings", autoProcId=auto_proc["autoProcId"])
    shells = {
        s["scalingStatisticsType"]: s
        for s in client.records(
            "auto-proc-scaling-statistics", autoProcScalingId=scaling["autoProcScalingId"]
        )
    }
    assert set(shells) == {"overall", "outerShell"}
    assert (shells["overall"]["completeness"], shells["overall"]["multiplicity"]) == (99.6, 6.9)
    assert shells["overall"]["resolutionLimitHigh"] == 1.8
    assert (shells["outerShell"]["meanIOverSigI"], shells["outerShell"]["ccHalf"]) == (2.1, 62.0)
    assert shells["outerShell"]["rMerge"] == 0.41

    assert table_counts(client) == {
        "Proposal": 1,
        "BLSession": 1,
        "Container": 1,
        "BLSample": 1,
        "Workflow": 1,
        "WorkflowStep": 1,
        "WorkflowMesh": 1,
        "DataCollectionGroup": 3,
        "Position": 2,
        "DataCollection": 3,
        "GridInfo": 1,
        "ImageQualityIndicators": 120,
        "XrayCentring": 1,
        "XrayCentringResult": 2,
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
        "AutoProcScalingStatistics": 2,
    }


# -- no LIMS, a LIMS that refuses, a LIMS that is down -------------------------------------------


def test_without_a_client_or_visit_the_writer_does_nothing(client: LimsClient) -> None:
    for writer in (
        LimsWriter(None),
        LimsWriter.for_sample(None, VISIT, "not a location"),
        LimsWriter(client, visit=None),
    ):
        assert not writer.enabled
        out = write_workflow(writer)
        writer.add_xray_centring(None, status="failed", kind="3d", regions=[])
        assert all(value is None for value in out.values())
        assert writer.errors == [] and writer.workflow is None
    assert table_counts(client) == {}


def test_refusals_are_logged_and_kept_and_the_workflow_goes_on(
    client: LimsClient, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = LimsWriter(client, Visit("mx9999", 1))  # no such session in the LIMS
    with caplog.at_level(logging.WARNING, logger="bes.tasks.lims_records"):
        group = nowhere.start_group("Mesh", start=T0)
        nowhere.add_collection(group, ScanRecord(start=T0, n_images=10))

    assert group is None
    assert len(nowhere.errors) == 1 and "proposal mx9999 not found" in nowhere.errors[0]
    assert "404" in nowhere.errors[0] and "proposal mx9999 not found" in caplog.text

    LimsWriter.for_sample(client, VISIT, "1:1")  # the session exists from here on
    ghost = LimsWriter.for_sample(client, VISIT, "1:1", sample_lims_id=777)
    ghost.robot_action("LOAD", start=T0, end=at(30), status="SUCCESS")
    ghost.sample_status("Collected")
    assert [e.split(":")[0] for e in ghost.errors] == ["robot action LOAD", "sample status"]
    assert "no BLSample with id 777" in ghost.errors[0]
    assert "RobotAction" not in table_counts(client)
    assert client.pending() == 0 and client.failed() == []


def test_a_reader_token_is_a_refusal_kept_for_a_flush_with_a_writer_token(
    lims: EmbeddedLims, tmp_path: Path
) -> None:
    with LimsClient(lims.url, lims.reader_token, outbox=tmp_path / "r.sqlite", **FAST) as reader:
        writer = LimsWriter(reader, VISIT)
        writer.start_workflow("MeshScan", "mesh")
        assert isinstance(writer.workflow, Handle) and writer.workflow.id is None
        assert len(writer.errors) == 1 and "403" in writer.errors[0]
        assert reader.pending() == 1 and reader.failed() == []


def test_with_a_wrong_token_the_whole_tree_waits_and_one_flush_stores_it_once(
    lims: EmbeddedLims, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every write refused with 401 (parents and the records that depend on them) stays in
    the outbox; ``bes lims flush`` with the right token stores the whole tree, linked."""
    outbox = tmp_path / "o.sqlite"
    with LimsClient(lims.url, "not-the-token-at-all", outbox=outbox, **FAST) as wrong:
        with caplog.at_level(logging.WARNING, logger="bes.tasks.lims_records"):
            writer = LimsWriter.for_sample(
                wrong, VISIT, "1:3", beamline_name="SIM-MX", barcode="DM0103"
            )
            out = write_workflow(writer)

        handles = [writer.sample, writer.workflow, *out.values()]
        assert all(isinstance(h, Handle) and h.id is None for h in handles), handles
        assert writer.errors and all("401" in error for error in writer.errors)
        assert "kept in the outbox for `bes lims flush`" in caplog.text
        queued = wrong.pending()
        assert queued > 20 and wrong.failed() == []
    with LimsClient(lims.url, lims.token, auto_replay=False, **FAST) as right:
        assert table_counts(right) == {}  # nothing written with the wrong token

    flush = ["lims", "flush", "--outbox", str(outbox), "--url", lims.url, "--token", lims.token]
    assert main(flush) == 0
    assert main(flush) == 0  # a second flush has nothing left to send

    with LimsClient(lims.url, lims.token, outbox=outbox, auto_replay=False, **FAST) as right:
        assert right.pending() == 0 and right.failed() == []
        for handle in handles:  # the ids the flush got, by local id (as a later process would)
            assert isinstance(handle, Handle)
            handle.id = right.handle(handle.local_id).id
        assert_workflow_stored(right, writer, out)


def test_bad_values_from_a_task_are_bugs_and_raise(client: LimsClient) -> None:
    writer = LimsWriter.for_sample(client, VISIT, "1:1")
    with pytest.raises(ValueError, match="experimentType"):
        writer.start_group("Meshy", start=T0)
    with pytest.raises(ValueError, match="no time zone"):
        writer.start_group("Mesh", start=datetime(2025, 3, 1, 22, 0))
    group = writer.start_group("Mesh", start=T0)
    with pytest.raises(ValueError, match=r"transmission is a fraction \(0..1\), got 25"):
        writer.add_collection(group, ScanRecord(start=T0, transmission=25.0))
    with pytest.raises(ValueError, match="'puck:pin'"):
        LimsWriter.for_sample(client, VISIT, "A5")
    with pytest.raises(ValueError, match="processing status 'done' unknown"):
        writer.add_processing(1, {"program": "x", "status": "done"})
    assert writer.errors == []


def test_while_the_lims_is_down_writes_queue_and_arrive_once_when_it_is_back(
    restartable: Restartable, tmp_path: Path
) -> None:
    server = restartable.server
    with LimsClient(server.url, server.token, outbox=tmp_path / "o.sqlite", **FAST) as client:
        restartable.stop()
        writer = LimsWriter.for_sample(client, VISIT, "1:3", beamline_name="SIM-MX")
        out = write_workflow(writer)

        assert writer.errors == [] and client.down
        assert isinstance(writer.sample, Handle) and writer.sample.id is None
        assert client.pending() > 20
        restartable.start()
        wait_until(lambda: client.pending() == 0)  # the client's replay thread sends them

        assert client.failed() == []
        assert all(h.id is not None for h in out.values())
        again = LimsWriter.for_sample(client, VISIT, "1:3", beamline_name="SIM-MX")
        assert ident(again.sample) == ident(writer.sample)
        counts = table_counts(client)
        assert (counts["BLSample"], counts["Container"], counts["DataCollectionGroup"]) == (1, 1, 3)
        assert (counts["ImageQualityIndicators"], counts["AutoProcScalingStatistics"]) == (120, 2)
        groups = client.records("data-groups", blSampleId=ident(writer.sample))
        assert {g["workflowId"] for g in groups} == {ident(writer.workflow)}
        assert client.get("samples", ident(writer.sample))["blSampleStatus"] == "Collected"
        assert client.get("data-collections", ident(out["osc"]))["transmission"] == 25.0
