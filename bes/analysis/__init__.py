"""Online analysis: pure functions on arrays returning small dataclasses.

No hardware, no files, no globals: every function here can be tested against a
known answer. Conventions (motor names, geometry) are those of docs/architecture.md.
"""
