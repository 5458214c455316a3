"""The LIMS client bes uses: typed ISPyB records over HTTP, with a durable outbox.

client = LimsClient(url, token, outbox="bes-data/lims/outbox.sqlite")
group = client.add_data_group(Visit("mx1234", 1), DataCollectionGroup(experimentType="Mesh"))
collection = client.add_data_collection(group, DataCollection(numberOfImages=400))
"""

from lims.client.client import (
    FlushReport,
    LimsAuthError,
    LimsClient,
    LimsError,
    LimsRejected,
    LimsUnavailable,
    Page,
)
from lims.client.handles import Handle, Ref, Visit

__all__ = [
    "FlushReport",
    "Handle",
    "LimsAuthError",
    "LimsClient",
    "LimsError",
    "LimsRejected",
    "LimsUnavailable",
    "Page",
    "Ref",
    "Visit",
]
