"""Bearer tokens: readers read, writers write, anyone else gets 401 and writes nothing."""

from __future__ import annotations

import pytest
import requests

from lims.client import LimsAuthError, LimsClient, LimsUnavailable
from lims.client import records as r
from lims.service.embedded import EmbeddedLims
from tests.lims.mxpresse import seed_session

WORKFLOW = {"workflowType": "MXPressE"}


def post(lims: EmbeddedLims, path: str, body: object, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{lims.url}{path}", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("token", "detail"),
    [(None, "missing bearer token"), ("wrong-token-0123456789", "unknown bearer token")],
)
def test_no_or_wrong_token_gets_401_and_nothing_is_written(
    lims: EmbeddedLims, client: LimsClient, token: str | None, detail: str
) -> None:
    answer = post(lims, "/workflows", WORKFLOW, token)
    invalid_body = post(lims, "/workflows", {"workflowType": "nonsense"}, token)

    assert answer.status_code == 401 and invalid_body.status_code == 401
    assert detail in answer.json()["detail"]
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert client.counts()["Workflow"] == 0


def test_a_reader_reads_but_may_not_write(lims: EmbeddedLims, client: LimsClient) -> None:
    seed_session(client)
    write = post(lims, "/workflows", WORKFLOW, lims.reader_token)
    read = requests.get(
        f"{lims.url}/sessions", headers={"Authorization": f"Bearer {lims.reader_token}"}, timeout=10
    )

    assert write.status_code == 403 and "writer token" in write.json()["detail"]
    assert read.status_code == 200 and read.json()["total"] == 1
    assert client.counts()["Workflow"] == 0


def test_a_writer_token_reads_and_writes(lims: EmbeddedLims) -> None:
    assert post(lims, "/workflows", WORKFLOW, lims.token).status_code == 201
    with LimsClient(lims.url, lims.token) as client:
        assert client.page("workflows").total == 1


def test_health_and_openapi_need_no_token_and_openapi_lists_the_routes(lims: EmbeddedLims) -> None:
    assert requests.get(f"{lims.url}/health", timeout=10).json() == {"status": "ok"}
    spec = requests.get(f"{lims.url}/openapi.json", timeout=10).json()

    paths = spec["paths"]
    for path in (
        "/proposals/{proposal}/sessions/{visit}/data-groups",
        "/data-groups/{dataCollectionGroupId}",
        "/data-groups/{dataCollectionGroupId}/data-collections",
        "/data-collections/{dataCollectionId}/grids",
        "/data-collections/{dataCollectionId}/position",
        "/data-collections/{dataCollectionId}/image-quality-indicators",
        "/proposals/{proposal}/sessions/{visit}/robot-actions",
        "/robot-actions/{robotActionId}",
        "/samples/{blSampleId}",
        "/sessions",
        "/samples",
    ):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    sample_filters = {p["name"] for p in paths["/samples"]["get"]["parameters"]}
    assert {"skip", "limit", "containerId", "sessionId"} <= sample_filters


def test_the_client_raises_on_reads_with_a_wrong_token(lims: EmbeddedLims) -> None:
    with LimsClient(lims.url, "wrong-token-0123456789") as client:
        with pytest.raises(LimsAuthError, match="401"):
            client.counts()
        assert client.health()  # public


def test_a_client_without_outbox_raises_when_the_lims_is_unreachable(lims: EmbeddedLims) -> None:
    url = lims.url
    lims.stop()
    with (
        LimsClient(url, lims.token, retries=1, backoff_s=0.0) as client,
        pytest.raises(LimsUnavailable, match="unreachable"),
    ):
        client.add_workflow(r.Workflow(workflowType="MXPressE"))
