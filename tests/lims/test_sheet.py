"""Sample sheets (CSV, JSON) loaded through ``bes lims load-sheet``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bes.cli import main
from lims.client import LimsClient
from lims.service.embedded import EmbeddedLims
from lims.sheet import SheetError, read_sheet

HEADER = (
    "proposal,visit_number,beamLineName,containerCode,containerBarcode,sampleChangerLocation,"
    "capacity,location,name,code,protein,spaceGroup,cell_a,cell_b,cell_c,cell_alpha,cell_beta,"
    "cell_gamma,comments"
)
CSV = f"""{HEADER}
mx1234,1,SIM-MX,puck-01,UP0001,1,16,1,lyso-1,DM0101,lyso,P43212,79.1,79.1,37.9,90,90,90,
mx1234,1,SIM-MX,puck-01,UP0001,1,16,2,lyso-2,DM0102,lyso,P43212,79.1,79.1,37.9,90,90,90,small
mx1234,1,SIM-MX,puck-02,UP0002,2,16,1,thau-1,DM0201,thau,P41212,58,58,151,90,90,90,
mx1234,1,SIM-MX,puck-02,UP0002,2,16,5,empty-5,,,,,,,,,,
"""

SHEET = {
    "proposal": {"proposalCode": "mx", "proposalNumber": "1234", "title": "Test proteins"},
    "session": {"visit_number": 1, "beamLineName": "SIM-MX", "startDate": "2025-03-01T08:00:00"},
    "proteins": [{"acronym": "lyso", "name": "lysozyme"}],
    "containers": [
        {
            "code": "puck-01",
            "sampleChangerLocation": "1",
            "capacity": 16,
            "samples": [
                {
                    "location": "1",
                    "name": "lyso-1",
                    "protein": "lyso",
                    "crystal": {"spaceGroup": "P43212"},
                },
                {
                    "location": 2,
                    "name": "lyso-2",
                    "protein": "lyso",
                    "crystal": {"spaceGroup": "P43212"},
                },
                {"location": "3", "name": "no-crystal"},
            ],
        }
    ],
}


def load(lims: EmbeddedLims, path: Path) -> int:
    return main(["lims", "load-sheet", str(path), "--url", lims.url, "--token", lims.token])


def test_a_csv_sheet_loads_session_pucks_and_samples_once(
    lims: EmbeddedLims, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(CSV)

    assert load(lims, sheet) == 0
    assert "mx1234-1: 2 container(s), 4 sample(s)" in capsys.readouterr().out
    with LimsClient(lims.url, lims.reader_token) as reader:
        counts = reader.counts()
        assert (
            counts["Proposal"],
            counts["BLSession"],
            counts["Container"],
            counts["BLSample"],
        ) == (1, 1, 2, 4)
        assert (counts["Protein"], counts["Crystal"]) == (2, 2)  # lyso-1 and lyso-2 share a form
        puck = reader.records("containers", code="puck-02")[0]
        assert (puck["barcode"], puck["sampleChangerLocation"], puck["capacity"]) == (
            "UP0002",
            "2",
            16,
        )
        thau = reader.records("samples", containerId=puck["containerId"], location="1")[0]
        crystal = reader.get("crystals", thau["crystalId"])
        assert (crystal["spaceGroup"], crystal["cell_c"]) == ("P41212", 151.0)

        assert load(lims, sheet) == 0  # again: nothing new
        assert reader.counts() == counts


def test_a_json_sheet_loads_and_a_changed_sample_is_updated(
    lims: EmbeddedLims, tmp_path: Path
) -> None:
    sheet = tmp_path / "sheet.json"
    sheet.write_text(json.dumps(SHEET))
    assert load(lims, sheet) == 0

    SHEET_2 = json.loads(json.dumps(SHEET))
    SHEET_2["containers"][0]["samples"][2]["comments"] = "re-mounted"
    sheet.write_text(json.dumps(SHEET_2))
    assert load(lims, sheet) == 0

    with LimsClient(lims.url, lims.reader_token) as reader:
        samples = reader.records("samples")
        assert [(s["name"], s.get("comments")) for s in samples] == [
            ("lyso-1", None),
            ("lyso-2", None),
            ("no-crystal", "re-mounted"),
        ]
        assert samples[0]["crystalId"] == samples[1]["crystalId"] and "crystalId" not in samples[2]
        session = reader.records("sessions")[0]
        assert session["startDate"] == "2025-03-01T08:00:00"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.csv", "proposal,visit_number,containerCode,name\n", "missing column(s) ['location']"),
        ("s.csv", CSV.replace("comments", "comment"), "unknown column(s) ['comment']"),
        (
            "s.csv",
            CSV.replace(
                "mx1234,1,SIM-MX,puck-02,UP0002,2,16,5", "mx1234,2,SIM-MX,puck-02,UP0002,2,16,5"
            ),
            "line 5: session mx1234-2 differs",
        ),
        (
            "s.csv",
            CSV.replace("puck-02,UP0002,2,16,5,", "puck-02,UP0002,2,16,17,"),
            "location 17 is outside container 'puck-02'",
        ),
        ("s.csv", CSV.replace(",lyso-2,", ",,"), "line 3: name is empty"),
        (
            "s.csv",
            CSV.replace("79.1,79.1,37.9,90,90,90,small", "big,79.1,37.9,90,90,90,small"),
            "line 3 crystal: cell_a",
        ),
        ("s.json", json.dumps({**SHEET, "sesion": {}}), "unknown key(s) ['sesion']"),
        (
            "s.json",
            json.dumps({**SHEET, "proposal": "1234"}),
            "proposal '1234' is not code + number",
        ),
        (
            "s.json",
            json.dumps(
                {
                    **SHEET,
                    "containers": [
                        {"code": "p", "samples": [{"location": "1", "name": "a", "crystal": {}}]}
                    ],
                }
            ),
            "a crystal needs the sample's protein",
        ),
        (
            "s.json",
            json.dumps(
                {
                    **SHEET,
                    "containers": [{"code": "p", "samples": [{"location": "1", "nmae": "a"}]}],
                }
            ),
            "containers[0] samples[0]: name: Field required; nmae: Extra inputs",
        ),
        ("s.json", "{", "is not valid JSON"),
        ("s.txt", "x", "unknown format '.txt'; use .csv or .json"),
    ],
)
def test_a_bad_sheet_is_refused_naming_the_place_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SheetError) as refused:
        read_sheet(path)
    assert message in str(refused.value)


def test_load_sheet_reports_a_bad_sheet_and_writes_nothing(
    lims: EmbeddedLims, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "bad.csv"
    sheet.write_text(CSV.replace("comments", "comment"))
    assert load(lims, sheet) == 1
    assert "bes lims: " in capsys.readouterr().err
    with LimsClient(lims.url, lims.reader_token) as reader:
        assert reader.counts()["Proposal"] == 0
