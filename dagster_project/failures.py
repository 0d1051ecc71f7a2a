"""The root cause of a failed step as one line: the exception class and message the user's code raised.

Dagster wraps an exception raised in a step in ``DagsterExecutionStepExecutionError`` ("Error occurred while
executing op ...") and keeps the original as the error's ``cause``. The line is built from that structured
chain (``SerializableErrorInfo.cause`` / ``context`` and ``cls_name``, checked against Dagster's class
hierarchy of wrappers), not by editing the wrapper's text.
"""

from __future__ import annotations

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

#: The run tag that carries the first failure line, so the UI's run list shows the cause.
FAILURE_TAG = "ndvi/failure"
#: Longest failure line kept in the run tag.
MAX_TAG_CHARS = 500
#: Lines of a multi-line root-cause message shown below its first line (dbt's errors, for example).
MAX_DETAIL_LINES = 4


#: The pipeline's own failures (:class:`dagster.Failure` and its batch form,
#: :class:`dagster_project.partitions.PartitionFailure`): their description is the cause, without a class name.
INTENTIONAL = frozenset({"Failure", "PartitionFailure"})


def _user_code_wrappers() -> frozenset[str]:
    """Names of the exceptions Dagster raises around an error of user code: ``DagsterUserCodeExecutionError``
    and every subclass of it (the step, resource, input, output and type-check wrappers)."""
    names, classes = set(), [dg.DagsterUserCodeExecutionError]
    while classes:
        cls = classes.pop()
        names.add(cls.__name__)
        classes += cls.__subclasses__()
    return frozenset(names)


#: Dagster's wrappers of user-code errors, from its class hierarchy (a serialized error keeps only the class
#: name, so membership is checked by name against that hierarchy, not by a name prefix).
USER_CODE_WRAPPERS = _user_code_wrappers()


def root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The exception the step's own code raised: ``error`` unwrapped from Dagster's wrapper exceptions
    (:data:`USER_CODE_WRAPPERS`, which keep it as their ``cause``, or as ``context`` when raised while handling
    it).

    The chain stops at the first exception that is not such a wrapper: it is the one whose message the
    pipeline wrote for the user (``StacApiError: STAC search at URL failed: ...``); its own causes are details,
    even when its class name happens to start with ``Dagster``."""
    while error.cls_name in USER_CODE_WRAPPERS and (error.cause or error.context) is not None:
        error = error.cause or error.context
    return error


def _message_lines(root: SerializableErrorInfo) -> list[str]:
    """The non-empty lines of the root cause's own message, without traceback's ``module.Class: `` prefix."""
    cls_name = root.cls_name or "Error"
    # SerializableErrorInfo.message is traceback's "module.Class: message"; the class is given separately
    message = root.message.strip()
    head, sep, rest = message.partition(f"{cls_name}: ")
    text = rest if sep and (head == "" or head.endswith(".")) else message
    return [line.strip() for line in text.splitlines() if line.strip()]


def error_line(error: SerializableErrorInfo) -> str:
    """``Class: message`` (first line) of ``error``'s root cause; a :class:`dagster.Failure` gives only its
    description, which the pipeline writes as the cause."""
    root = root_cause(error)
    cls_name = root.cls_name or "Error"
    first = next(iter(_message_lines(root)), "")
    if cls_name in INTENTIONAL:
        return first or "failed"
    return f"{cls_name}: {first}" if first else cls_name


def error_details(error: SerializableErrorInfo) -> list[str]:
    """The next lines of the root cause's message (at most :data:`MAX_DETAIL_LINES`; every line of a batch's
    partition failures, one per failed partition with its cause)."""
    root = root_cause(error)
    lines = _message_lines(root)[1:]
    return lines if root.cls_name == "PartitionFailure" else lines[:MAX_DETAIL_LINES]


def failure_lines(result: dg.ExecuteInProcessResult) -> list[tuple[str, str, list[str]]]:
    """``(step, cause, details)`` for every failed step of ``result``; a run that failed outside any step
    (resource set-up, an interrupt) gives step ``resources`` or ``run``."""
    lines = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if event.is_step_failure or (event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE and error):
            step = event.step_key or "resources"
            lines.append((step, error_line(error), error_details(error)))
    if not lines and not result.success:
        failure = next((e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE), None)
        error = getattr(failure.event_specific_data, "error", None) if failure else None
        if error is not None:
            lines.append(("run", error_line(error), error_details(error)))
        else:
            lines.append(("run", (failure.message if failure else None) or "failed; see the Dagster UI", []))
    return lines
