"""The first node of every MX recipe: check every parameter before anything moves, and set
up the sample's run (data layout, LIMS workflow record, software-time account)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bes.acquisition.layout import DataLayout, safe_name
from bes.acquisition.software_time import SoftwareTime
from bes.engine.context import UNUSED_INPUTS_KEY
from bes.tasks.lims_records import LimsWriter
from bes.tasks.mx_state import STATE_KEY, MxTask, SampleRun
from bes.tasks.parameters import (
    ACCEPTED_NAMES,
    MxParameters,
    ParameterError,
    check_unknown,
    parse_parameters,
)


class PrepareRun(
    MxTask,
    input_names=["recipe", "workflow_type"],
    optional_input_names=list(ACCEPTED_NAMES),
    output_names=["sample", "parameters"],
):
    """Validate the parameters (a :class:`ParameterError` names a bad one; nothing has
    moved), then make the run's :class:`~bes.tasks.mx_state.SampleRun`."""

    def run(self) -> None:
        check_unknown(self.context.state.get(UNUSED_INPUTS_KEY, ()))
        values = {name: self.get_input_value(name, None) for name in ACCEPTED_NAMES}
        parameters = parse_parameters(values)
        check_plan(parameters)
        beamline = self.beamline
        location = parameters.location or beamline.sample_changer.mounted
        sample_name = parameters.sample_name or (
            f"{location.puck}-{location.pin}" if location is not None else "sample"
        )
        layout = DataLayout(
            root=Path(parameters.data_root),
            proposal=parameters.proposal,
            beamline=safe_name(beamline.name),
        )
        lims = self._lims_writer(parameters, location, sample_name, beamline.name)
        run = SampleRun(
            recipe=str(self.inputs.recipe),
            parameters=parameters,
            location=location,
            sample_name=sample_name,
            layout=layout,
            lims=lims,
            software=SoftwareTime(beamline.clock),
            start_beamline_s=beamline.clock.now(),
            transmission=parameters.mesh_transmission,
        )
        self.context.state[STATE_KEY] = run
        lims.start_workflow(str(self.inputs.workflow_type), f"{run.recipe} {sample_name}")
        self.report("sample", str(location) if location else None)
        self.outputs.sample = str(location) if location else None
        self.outputs.parameters = parameters.model_dump(exclude_defaults=True)

    def _lims_writer(
        self, parameters: MxParameters, location: Any, sample_name: str, beamline_name: str
    ) -> LimsWriter:
        client = self.context.lims
        if client is None or location is None:
            return LimsWriter(None)
        from lims.client.handles import Visit

        visit = Visit(parameters.proposal, parameters.visit_number)
        return LimsWriter.for_sample(
            client,
            visit,
            str(location),
            sample_name=sample_name,
            sample_lims_id=parameters.sample_lims_id,
            beamline_name=beamline_name,
        )


def check_plan(parameters: MxParameters) -> None:
    """Checks across parameters (each alone is checked by the model)."""
    rows, cols = parameters.mesh_rows, parameters.mesh_cols
    if rows is not None and cols is not None and rows * cols > parameters.mesh_max_points:
        raise ParameterError(
            f"bad parameters mesh_rows={rows}, mesh_cols={cols}: {rows * cols} points exceed "
            f"mesh_max_points={parameters.mesh_max_points}"
        )
    if parameters.mesh_min_points**2 > parameters.mesh_max_points:
        raise ParameterError(
            f"bad parameter mesh_max_points={parameters.mesh_max_points}: smaller than "
            f"mesh_min_points^2 = {parameters.mesh_min_points**2}"
        )
