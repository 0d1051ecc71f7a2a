"""Whether an area's per-area dbt models (the input views, the latest layer, change and trend) have anything to
build, so that a re-run with nothing changed skips the dbt step.

Each build of an area's models records, per area and model, the model's code version (its dbt checksum, which
dagster-dbt gives as the asset's code version) and a *stamp* of everything the per-area models read for that
area: per stored year the composite's ``loaded_at``, the ``districts_version`` and the row count of
``ndvi_stats_yearly`` and ``ndvi_stats_yearly_distribution`` (with its green-share thresholds), the area's
published districts version, and its statistics settings (``raw.green_share_thresholds``,
``raw.change_baselines``). A later step for the same areas and models is skipped when every model exists in
the ``analytics`` schema and every record matches (a view's code version alone: it computes on read): the same
rows would come out. A view rebuilt by dbt drops the views that depend on it (dbt's rename and
``drop ... cascade``); they are then missing, so the next step that owns them builds them again. Recorded in
``raw.dbt_area_builds`` (an area's rows leave with the area, :mod:`ingestion.retire`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg

SCHEMA = "analytics"
SETUP_LOCK = 7_214_001  # the advisory lock of every raw DDL (ingestion.load.postgis)

_SOURCES = ("analytics.ndvi_stats_yearly", "analytics.ndvi_stats_yearly_distribution", "raw.districts",
            "raw.green_share_thresholds", "raw.change_baselines")

_STAMPS = """
with wanted as (
    select unnest(%(areas)s::text[]) as area_code
),
yearly_rows as (
    select s.area_code, s.year, max(s.composite_loaded_at) as loaded_at, max(s.districts_version) as dv,
           count(*) as n
    from analytics.ndvi_stats_yearly s join wanted using (area_code)
    group by 1, 2
),
yearly as (
    select area_code, string_agg(format('%%s:%%s:%%s:%%s', year, loaded_at, dv, n), ',' order by year) as years
    from yearly_rows group by 1
),
distribution_rows as (
    select s.area_code, s.year, max(s.composite_loaded_at) as loaded_at, max(s.districts_version) as dv,
           max(s.green_ndvi_thresholds::text) as thresholds, count(*) as n
    from analytics.ndvi_stats_yearly_distribution s join wanted using (area_code)
    group by 1, 2
),
distribution as (
    select area_code,
           string_agg(format('%%s:%%s:%%s:%%s:%%s', year, loaded_at, dv, thresholds, n), ',' order by year) as years
    from distribution_rows group by 1
),
districts as (
    select d.area_code, format('%%s:%%s', min(d.districts_version), count(*)) as version
    from raw.districts d join wanted using (area_code) group by 1
),
thresholds as (
    select t.area_code,
           string_agg(format('%%s=%%s:%%s', t.threshold_name, t.ndvi_threshold, t.threshold_label), ','
                      order by t.threshold_name) as thresholds
    from raw.green_share_thresholds t join wanted using (area_code) group by 1
)
select w.area_code,
       md5(concat_ws('|', y.years, d.years, di.version, th.thresholds, b.baseline_year::text)) as stamp
from wanted w
left join yearly y using (area_code)
left join distribution d using (area_code)
left join districts di using (area_code)
left join thresholds th using (area_code)
left join raw.change_baselines b using (area_code)
"""


def ensure_builds_table(conn: psycopg.Connection) -> None:
    """Create ``raw.dbt_area_builds(area_code, model, code_version, stamp, built_at)`` if missing (inside the
    caller's transaction, under the loaders' DDL lock)."""
    conn.execute("select pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
    conn.execute("create schema if not exists raw")
    conn.execute("""
        create table if not exists raw.dbt_area_builds (
            area_code text not null,
            model text not null,
            code_version text not null,
            stamp text not null,
            built_at timestamptz not null default clock_timestamp(),
            primary key (area_code, model)
        )""")


def _missing(conn: psycopg.Connection, names: Iterable[str]) -> list[str]:
    return [name for name in names if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None]


def area_stamps(conn: psycopg.Connection, areas: Iterable[str]) -> dict[str, str] | None:
    """The current stamp of each area (module docstring); None when a table the stamp reads does not exist
    yet (nothing built: every area needs its build). Reads only."""
    codes = sorted(set(areas))
    if _missing(conn, _SOURCES):
        return None
    return {area: stamp for area, stamp in conn.execute(_STAMPS, {"areas": codes}).fetchall()}


def _relation_kinds(conn: psycopg.Connection, models: Iterable[str]) -> dict[str, str]:
    """``relkind`` (``v`` view, ``r`` table, ...) of each model that exists in :data:`SCHEMA`."""
    return dict(conn.execute(
        "select c.relname::text, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = any(%s)", (SCHEMA, sorted(models))).fetchall())


def _reads_stamps(kinds: Mapping[str, str], models: Iterable[str]) -> bool:
    """Whether a stamp matters for ``models``: one of them is a table, or missing (its kind unknown until it is
    built). Only views: no stamp is read, so a step of input views never touches the statistics tables."""
    return any(kinds.get(model, "") != "v" for model in models)


def needing_build(conn: psycopg.Connection, areas: Iterable[str], code_versions: Mapping[str, str | None]
                  ) -> tuple[list[str], dict[str, str] | None]:
    """(the areas among ``areas`` for which the models ``code_versions`` (model name -> its code version) would
    build something, the areas' stamps to pass to :func:`record_build` after the build). An area needs its
    build when a model is missing, or was last built for it from other code, or (a table, not a view: a view
    computes on read) from another stamp, or was never recorded. Take the stamps *before* the build: anything
    loaded meanwhile makes the next run build again. Reads only."""
    codes = sorted(set(areas))
    kinds = _relation_kinds(conn, code_versions)
    stamps = area_stamps(conn, codes) if _reads_stamps(kinds, code_versions) else None
    recorded: dict[tuple[str, str], tuple[str, str]] = {}
    if not _missing(conn, ["raw.dbt_area_builds"]):
        recorded = {(a, m): (c, s) for a, m, c, s in conn.execute(
            "select area_code, model, code_version, stamp from raw.dbt_area_builds"
            " where area_code = any(%s) and model = any(%s)", (codes, sorted(code_versions))).fetchall()}

    def current(area: str, model: str) -> bool:
        code, stamp = recorded.get((area, model), (None, None))
        if model not in kinds or code is None or code != code_versions[model]:
            return False
        return kinds[model] == "v" or (stamps is not None and stamp == stamps[area])

    return [area for area in codes if not all(current(area, model) for model in code_versions)], stamps


def forget_builds(conn: psycopg.Connection, areas: Iterable[str], models: Iterable[str]) -> None:
    """Before a build of ``models`` for ``areas``: drop their records, so that a build that fails half-way (a
    model built, its test failed) is not taken for the last good one; :func:`record_build` writes them again
    after a success. The caller commits before the build starts."""
    if not _missing(conn, ["raw.dbt_area_builds"]):
        conn.execute("delete from raw.dbt_area_builds where area_code = any(%s) and model = any(%s)",
                     (sorted(set(areas)), sorted(models)))


def record_build(conn: psycopg.Connection, areas: Iterable[str], stamps: Mapping[str, str] | None,
                 code_versions: Mapping[str, str | None]) -> None:
    """After a successful build of the models ``code_versions`` for ``areas``: record it, with the ``stamps``
    taken before the build (None: a table they read did not exist then, so they are taken now; if one still
    does not, only the views' records will count). ``conn`` in autocommit."""
    if stamps is None and _reads_stamps(_relation_kinds(conn, code_versions), code_versions):
        stamps = area_stamps(conn, areas)
    with conn.transaction():
        ensure_builds_table(conn)
        for area in sorted(set(areas)):
            for model, code in code_versions.items():
                if code is not None:
                    conn.execute(
                        "insert into raw.dbt_area_builds (area_code, model, code_version, stamp)"
                        " values (%s, %s, %s, %s) on conflict (area_code, model) do update set"
                        " code_version = excluded.code_version, stamp = excluded.stamp,"
                        " built_at = clock_timestamp()", (area, model, code, (stamps or {}).get(area, "")))
