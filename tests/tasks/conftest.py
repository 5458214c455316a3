"""Fixtures of the task tests: the LIMS fixtures of tests/lims (a LIMS on loopback, a
writer client, one that a test can stop and start again)."""

from tests.lims.conftest import client, lims  # noqa: F401  (fixtures)
from tests.lims.helpers import restartable  # noqa: F401  (fixture)
