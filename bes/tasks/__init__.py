"""Workflow tasks: one small step each, talking to hardware only through ``bes.hal``.

Every task is a :class:`bes.tasks.base.BesTask`; recipes in ``workflows/`` name them by
``task_identifier`` (``bes.tasks.module.Class``).
"""
