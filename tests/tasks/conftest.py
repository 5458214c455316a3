"""Fixtures of the task tests: a LIMS a test can stop and start again."""

from tests.lims.helpers import restartable  # noqa: F401  (fixture)
