{#-
  on-run-start: incremental tables built before models were keyed by area (no `area_code` column) cannot be
  appended to; drop them so this run rebuilds them from `raw` (which the loader migrated the same way).
-#}
{% macro retire_single_area_models() %}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
        {%- set old_tables = run_query(
            "select table_name from information_schema.tables t where table_schema = 'analytics'"
            ~ " and table_name in ('stg_ndvi_tiles', 'ndvi_stats_yearly', 'ndvi_stats_latest')"
            ~ " and not exists (select from information_schema.columns c where c.table_schema = t.table_schema"
            ~ " and c.table_name = t.table_name and c.column_name = 'area_code')"
        ).columns[0].values() -%}
        {%- for table in old_tables -%}
            {{ log("analytics." ~ table ~ " has the single-area layout; rebuilding it", info=true) }}
            {%- do run_query("drop table analytics." ~ adapter.quote(table) ~ " cascade") -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
