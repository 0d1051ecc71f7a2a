"""The internals of dagster-dbt and dbt-core that the in-process dbt runner uses are pinned in one module
(``dagster_project/dbt_adapter.py``): an upgrade that renames or drops a parameter, or a field of the
selection result, fails here before it fails a run."""

from __future__ import annotations

import inspect

import pytest
from dagster_dbt.asset_utils import DbtCliInvocationPartialParams

from dagster_project import dbt_adapter


@pytest.mark.parametrize("internal", list(dbt_adapter.PINNED), ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_every_pinned_internal_still_takes_the_parameters_the_adapter_passes(internal):
    parameters = inspect.signature(internal).parameters
    missing = [name for name in dbt_adapter.PINNED[internal] if name not in parameters]
    assert not missing, f"{internal.__qualname__} no longer takes {missing}: adapt dagster_project/dbt_adapter.py"


def test_the_selection_result_still_has_the_fields_the_adapter_reads():
    fields = set(DbtCliInvocationPartialParams.__annotations__)
    assert set(dbt_adapter.PINNED_RESULT_FIELDS) <= fields


def test_only_the_adapter_imports_dagster_dbt_or_dbt_internals():
    from pathlib import Path

    root = Path(dbt_adapter.__file__).resolve().parents[1]
    public = ("from dagster_dbt import", "import dagster_dbt\n")
    offenders = []
    for path in [*root.glob("dagster_project/**/*.py"), *root.glob("ingestion/**/*.py")]:
        if path.name == "dbt_adapter.py":
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            internal_dagster_dbt = stripped.startswith("from dagster_dbt.") and not stripped.startswith(public)
            internal_dbt = stripped.startswith(("from dbt_common", "import dbt_common", "from dbt.contracts",
                                                "from dbt.events", "from dbt.parser"))
            if internal_dagster_dbt or internal_dbt:
                offenders.append(f"{path.relative_to(root)}: {stripped}")
    assert not offenders, offenders
