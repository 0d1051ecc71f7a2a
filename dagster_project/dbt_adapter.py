"""The one module that reaches into dagster-dbt and dbt-core beyond their public APIs.

dagster-dbt computes a step's dbt selection and turns dbt's events into Dagster events only inside
``DbtCliResource.cli``, which runs dbt as a child process. dbt stays in the run's process here
(:mod:`dagster_project.dbt_core`), so it needs those two pieces without the child; dbt-core's callbacks hand
over events as protobuf messages, which dbt's own JSON log line format turns into the dicts dagster-dbt reads.
Each internal is wrapped once below and listed in :data:`PINNED` with the parameters this module passes;
``tests/test_dbt_adapter.py`` fails when an upgrade changes any of them, before a run does.

Every selection form dagster-dbt produces is honoured: ``--select``/``--exclude`` lists, and above
200 selected nodes a ``--selector`` that exists only in a temporary copy of the project, which dagster-dbt
writes; then dbt is pointed at that copy (:attr:`StepSelection.project_dir`) and the copy is removed after
the step (:meth:`StepSelection.cleanup`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dbt_common.events.functions import msg_to_dict

#: The internals used, with the parameters this module passes them (checked by tests/test_dbt_adapter.py).
PINNED: dict[Callable[..., Any], tuple[str, ...]] = {
    get_updated_cli_invocation_params_for_context: ("context", "manifest", "dagster_dbt_translator",
                                                    "runtime_excludes"),
    DbtCoreCliEventMessage: ("raw_event", "event_history_metadata"),
    DbtCoreCliEventMessage.to_default_asset_events: ("manifest", "dagster_dbt_translator", "context",
                                                     "target_path", "project"),
    msg_to_dict: ("msg",),
}
#: The attributes read from the result of :func:`get_updated_cli_invocation_params_for_context`.
PINNED_RESULT_FIELDS = ("manifest", "dagster_dbt_translator", "selection_args", "indirect_selection",
                        "dbt_project")


@dataclass(frozen=True)
class StepSelection:
    """What one dbt step builds, as dagster-dbt selects it for the step's context.

    ``args`` are dbt's selection flags (``--select``/``--exclude``, or ``--selector NAME``) plus
    ``--indirect-selection``; ``project_dir`` is the folder dbt must read its project from (the project, or
    dagster-dbt's temporary copy that holds the selector); ``manifest``, ``translator`` and ``project`` are
    those of the step's dbt assets.
    """

    args: list[str]
    project_dir: Path
    manifest: Mapping[str, Any]
    translator: DagsterDbtTranslator
    project: DbtProject | None
    temporary_copy: bool = field(default=False)

    def cleanup(self) -> None:
        """Remove dagster-dbt's temporary project copy, if this selection made one."""
        if self.temporary_copy:
            shutil.rmtree(self.project_dir, ignore_errors=True)


def step_selection(context: dg.AssetExecutionContext, project_dir: Path,
                   exclude: tuple[str, ...] = ()) -> StepSelection:
    """dagster-dbt's selection for the step's selected assets and checks, plus the runtime ``exclude``."""
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest={}, dagster_dbt_translator=DagsterDbtTranslator(),
        runtime_excludes=list(exclude))
    used_dir = Path(params.dbt_project.project_dir) if params.dbt_project is not None else project_dir
    return StepSelection(
        args=[*params.selection_args, "--indirect-selection", params.indirect_selection or "buildable"],
        project_dir=used_dir, manifest=params.manifest, translator=params.dagster_dbt_translator,
        project=params.dbt_project, temporary_copy=used_dir.resolve() != project_dir.resolve())


def event_dict(event: Any) -> dict[str, Any]:
    """A dbt-core callback's event as the dict of its JSON log line (what dagster-dbt reads)."""
    return msg_to_dict(event)


def dagster_events(raw_event: Mapping[str, Any], selection: StepSelection, context: dg.AssetExecutionContext,
                   target_path: Path) -> Iterator[Any]:
    """dagster-dbt's Dagster events (outputs, check results, observations) for one dbt event dict."""
    message = DbtCoreCliEventMessage(raw_event=dict(raw_event), event_history_metadata={})
    yield from message.to_default_asset_events(manifest=selection.manifest,
                                               dagster_dbt_translator=selection.translator, context=context,
                                               target_path=target_path, project=selection.project)


def node_checksums(manifest: Any) -> dict[str, str]:
    """``unique_id`` -> file checksum of every node of a dbt-core ``Manifest`` (the result of ``dbt parse``)."""
    return {unique_id: node.checksum.checksum for unique_id, node in manifest.nodes.items()}
