"""Acquisition procedures on the HAL used by the MX tasks: data layout, scans with live
analysis, camera views, processing hooks."""
