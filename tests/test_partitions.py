"""Area × year partitions: a batch's key range is listed as Dagster lists it, once per range, so recording
metadata for each partition of a batch costs time linear in its partitions, not quadratic."""

import copy
import pickle

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from dagster_project.partitions import AREA, KEPT_RANGES, YEAR, AreaYearPartitions

AREAS = [f"GM{i:04d}" for i in range(1, 41)]
YEARS = ["2019", "2020", "2021"]


def _dimensions() -> dict[str, dg.PartitionsDefinition]:
    return {AREA: dg.StaticPartitionsDefinition(AREAS), YEAR: dg.StaticPartitionsDefinition(YEARS)}


@pytest.mark.parametrize(("start", "end"), [("GM0001|2019", "GM0040|2021"), ("GM0003|2020", "GM0017|2021"),
                                            ("GM0040|2019", "GM0040|2019")])
def test_a_range_lists_the_keys_dagster_lists_and_each_caller_gets_its_own_list(start, end):
    ours, dagsters = AreaYearPartitions(_dimensions()), dg.MultiPartitionsDefinition(_dimensions())
    key_range = dg.PartitionKeyRange(start, end)
    expected = dagsters.get_partition_keys_in_range(key_range)
    first = ours.get_partition_keys_in_range(key_range)
    assert first == expected
    assert all(isinstance(key, dg.MultiPartitionKey) for key in first)
    first.clear()  # a caller's own list: the kept one is untouched
    assert ours.get_partition_keys_in_range(key_range) == expected
    assert ours == dagsters  # the same definition for Dagster (equality, the UI's partition table)


def test_a_batch_recording_each_partitions_metadata_lists_its_range_once(monkeypatch):
    partitions = AreaYearPartitions(_dimensions())
    listed: list[dg.PartitionKeyRange] = []
    dagsters_method = dg.MultiPartitionsDefinition.get_partition_keys_in_range

    def counted(self, partition_key_range, dynamic_partitions_store=None):
        listed.append(partition_key_range)
        return dagsters_method(self, partition_key_range, dynamic_partitions_store)

    monkeypatch.setattr(dg.MultiPartitionsDefinition, "get_partition_keys_in_range", counted)

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def batch(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        for key in context.partition_keys:  # as the pipeline's assets record each partition's figures
            area, year = key.keys_by_dimension[AREA], key.keys_by_dimension[YEAR]
            context.add_asset_metadata({"label": f"{area} {year}"}, partition_key=key)
        return dg.MaterializeResult()

    keys = partitions.get_partition_keys()
    listed.clear()
    result = dg.materialize([batch], instance=dg.DagsterInstance.ephemeral(), tags={
        ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})

    assert result.success
    records = {event.step_materialization_data.materialization.partition:
               event.step_materialization_data.materialization.metadata["label"].value
               for event in result.get_asset_materialization_events()}
    assert records == {key: f"{key.keys_by_dimension[AREA]} {key.keys_by_dimension[YEAR]}" for key in keys}
    # Dagster's own listing ran once for the batch's range, not once per recorded partition (120)
    assert len(listed) == 1, f"the range was listed {len(listed)} times for {len(keys)} partitions"


def test_the_kept_ranges_are_bounded_and_the_definition_copies_and_pickles():
    ours, dagsters = AreaYearPartitions(_dimensions()), dg.MultiPartitionsDefinition(_dimensions())
    ranges = [dg.PartitionKeyRange(f"{AREAS[i]}|2019", f"{AREAS[i + 1]}|2021") for i in range(2 * KEPT_RANGES)]
    for key_range in ranges:  # as a long-lived code server meets batch after batch
        assert ours.get_partition_keys_in_range(key_range) == dagsters.get_partition_keys_in_range(key_range)
        assert len(ours._ranges) <= KEPT_RANGES
    for twin in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):  # Dagster may copy a definition
        assert twin == ours
        assert twin.get_partition_keys_in_range(ranges[0]) == dagsters.get_partition_keys_in_range(ranges[0])
