"""The failure line of a step: the user's exception, found through Dagster's wrappers by their class."""

from __future__ import annotations

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from dagster_project.failures import USER_CODE_WRAPPERS, error_details, error_line


def _error(cls_name: str, message: str, cause: SerializableErrorInfo | None = None) -> SerializableErrorInfo:
    return SerializableErrorInfo(message=f"{message}\n", stack=[], cls_name=cls_name, cause=cause)


def test_unwraps_dagster_wrappers_and_stops_at_the_users_exception_whatever_its_name():
    inner = _error("ValueError", "ValueError: a detail of the cause")
    users = _error("DagsterishInputError", "acme.errors.DagsterishInputError: districts file x.gpkg has no CRS\n"
                                           "assign one with ogr2ogr", cause=inner)
    step = _error("DagsterExecutionStepExecutionError",
                  'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op '
                  '"districts"', cause=users)
    assert error_line(step) == "DagsterishInputError: districts file x.gpkg has no CRS"
    assert error_details(step) == ["assign one with ogr2ogr"]
    resource = _error("DagsterResourceFunctionError", "dagster._core.errors.DagsterResourceFunctionError: Error "
                      "executing resource_fn on ResourceDefinition postgis", cause=inner)
    assert error_line(resource) == "ValueError: a detail of the cause"
    assert {"DagsterExecutionStepExecutionError", "DagsterResourceFunctionError",
            dg.DagsterUserCodeExecutionError.__name__} <= USER_CODE_WRAPPERS
    assert "DagsterInvariantViolationError" not in USER_CODE_WRAPPERS
