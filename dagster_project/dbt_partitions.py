"""Dagster's partition records match what a dbt build rewrote, each with its own row count.

A yearly step builds every area-year loaded (or re-districted) since the last build, not only its own: after
a re-districting that is every year of the area. Dagster would record only the step's partition, so each
model's output here is followed by a materialisation of every other partition whose rows the build wrote,
and every ``dagster/row_count`` counts that partition's rows (not the whole table).

A step may be a batch (a key range, :mod:`dagster_project.partitions`): each of its own partitions gets its own
row count, and the partitions outside the batch that the build rewrote are materialised as above.

Which rows a build wrote: PostgreSQL stamps every row version with the transaction that wrote it (``xmin``).
:func:`write_mark` takes a transaction id before dbt starts; a row whose ``xmin`` is younger (``age`` smaller)
was written by the build (dbt's incremental delete+insert and append, or a table rebuilt whole). Views are
computed on read: only the step's own partition is reported for them.

A model is partitioned by the columns ``area_code`` and, for area × year assets, ``year``. A model of an area
× year asset without a ``year`` column (``district_tile_masks``: one grid serves every year of an area) holds
its rows for every year of the area: a rewritten area is reported for each of the area's years loaded in
``raw.ndvi_composites``, with the area's row count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from dagster_project.partitions import AREA, YEAR, batch_label, split_key

AREA_COLUMN = "area_code"
YEAR_COLUMN = "year"
ROW_COUNT = "dagster/row_count"


def write_mark(conn: psycopg.Connection) -> int:
    """A transaction id taken now: rows written after this have a younger ``xmin`` (``conn`` in autocommit)."""
    return int(conn.execute("select pg_current_xact_id()::text::bigint").fetchone()[0])


def _relation_kind(conn: psycopg.Connection, schema: str, name: str) -> tuple[str, set[str]]:
    """``relkind`` (``r`` table, ``v`` view, ...) and column names of a relation."""
    row = conn.execute(
        "select c.relkind::text, array(select a.attname::text from pg_attribute a where a.attrelid = c.oid"
        " and a.attnum > 0 and not a.attisdropped) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s", (schema, name)).fetchone()
    return (row[0], set(row[1])) if row else ("", set())


def partition_rows(conn: psycopg.Connection, relation: sql.Composable, columns: tuple[str, ...],
                   mark: int) -> dict[tuple, tuple[int, int]]:
    """Per value of ``columns``: (rows, rows written since ``mark``)."""
    keys = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    written = sql.SQL("age(xmin) < age((%s::bigint %% 4294967296)::text::xid)")  # xmin is the low 32 bits
    query = sql.SQL("select {keys}, count(*), count(*) filter (where {written}) from {relation} group by {keys}"
                    ).format(keys=keys, written=written, relation=relation)
    return {tuple(row[:-2]): (row[-2], row[-1]) for row in conn.execute(query, (mark,))}


def _is_yearly(context: dg.AssetExecutionContext) -> bool:
    return isinstance(context.partition_keys[0], dg.MultiPartitionKey)


def _own_rows(conn: psycopg.Connection, relation: sql.Composable, columns: set[str],
              context: dg.AssetExecutionContext) -> dict[Any, int]:
    """Row count of each of the step's own partitions (0 for one without rows): by area and year, or by area
    alone for a model without a ``year`` column (its rows serve every year of the area)."""
    by_year = _is_yearly(context) and YEAR_COLUMN in columns
    names = (AREA_COLUMN, YEAR_COLUMN) if by_year else (AREA_COLUMN,)
    keys = sql.SQL(", ").join(sql.Identifier(c) for c in names)
    areas = sorted({split_key(key)[0] for key in context.partition_keys})
    # filtered by area, so that a view (computed on read) is computed for the batch's areas only
    counts = {tuple(row[:-1]): row[-1] for row in conn.execute(
        sql.SQL("select {keys}, count(*) from {relation} where {area} = any(%s) group by {keys}").format(
            keys=keys, relation=relation, area=sql.Identifier(AREA_COLUMN)), (areas,))}
    own = {}
    for key in context.partition_keys:
        area, year = split_key(key)
        own[key] = counts.get((area, year) if by_year else (area,), 0)
    return own


def _count(conn: psycopg.Connection, relation: sql.Composable, where: Mapping[str, Any]) -> int:
    condition = sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in where) if where \
        else sql.SQL("true")
    return int(conn.execute(sql.SQL("select count(*) from {} where {}").format(relation, condition),
                            list(where.values())).fetchone()[0])


def _area_years(conn: psycopg.Connection, area: str) -> list[int]:
    return [row[0] for row in conn.execute(
        "select distinct year from raw.ndvi_composites where area_code = %s order by year", (area,))]


def _rewritten_partitions(conn: psycopg.Connection, relation: sql.Composable, columns: set[str],
                          context: dg.AssetExecutionContext, mark: int) -> dict[str, int]:
    """Partition key -> row count of every partition whose rows the build wrote (tables only)."""
    yearly = _is_yearly(context)
    found: dict[str, int] = {}
    if yearly and YEAR_COLUMN in columns:
        for (area, year), (rows, written) in partition_rows(conn, relation, (AREA_COLUMN, YEAR_COLUMN),
                                                            mark).items():
            if written:
                found[dg.MultiPartitionKey({AREA: str(area), YEAR: str(year)})] = rows
    else:
        for (area,), (rows, written) in partition_rows(conn, relation, (AREA_COLUMN,), mark).items():
            if not written:
                continue
            if yearly:
                for year in _area_years(conn, area):
                    found[dg.MultiPartitionKey({AREA: str(area), YEAR: str(year)})] = rows
            else:
                found[str(area)] = rows
    return found


def with_partition_figures(event: Any, raw: Mapping[str, Any], conn: psycopg.Connection,
                           context: dg.AssetExecutionContext, mark: int) -> Iterator[Any]:
    """A model's output with its own partition's row count, then a materialisation of every other partition
    the build wrote; a check result with the partition it ran for; any other event as it is."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    partition = {"partition": batch_label(context)} if partitioned else {}
    if isinstance(event, dg.AssetCheckResult) and partition:
        # so the check history says which area and year passed or failed
        yield dg.AssetCheckResult(passed=event.passed, asset_key=event.asset_key, check_name=event.check_name,
                                  severity=event.severity, description=event.description,
                                  metadata={**event.metadata, **partition})
        return
    if not isinstance(event, dg.Output) or not partitioned:
        yield event
        return
    node_relation = raw["data"]["node_info"]["node_relation"]
    schema, name = node_relation["schema"], node_relation["alias"]
    relation = sql.Identifier(schema, name)
    kind, columns = _relation_kind(conn, schema, name)
    if AREA_COLUMN not in columns:
        yield event.with_metadata({**event.metadata, ROW_COUNT: _count(conn, relation, {})})
        return
    asset_key = context.asset_key_for_output(event.output_name)
    own = _own_rows(conn, relation, columns, context)
    for key, rows in own.items():  # Dagster records the output once per own partition, with these figures
        context.add_asset_metadata({ROW_COUNT: rows}, asset_key=asset_key, partition_key=key)
    yield event
    if kind not in ("r", "p"):
        return  # a view is computed on read: nothing was rewritten
    valid = set(context.assets_def.partitions_def.get_partition_keys())
    for key, rows in sorted(_rewritten_partitions(conn, relation, columns, context, mark).items()):
        if key not in own and key in valid:
            yield dg.AssetMaterialization(
                asset_key=asset_key, partition=key,
                metadata={ROW_COUNT: rows, "rebuilt by": f"dbt build of {partition['partition']}"})
