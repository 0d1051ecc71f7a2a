{#-
  on-run-start: stop a run before any model when the tables the Python assets load are missing or empty,
  with a message that says what to materialise first (instead of one "relation does not exist" per model).
-#}
{% macro require_loaded_inputs() %}
    {%- if execute and flags.WHICH in ('run', 'build', 'test') -%}
        {%- set found = run_query(
            "select to_regclass('raw.districts') is not null, to_regclass('raw.ndvi_composites') is not null"
        ).rows[0] -%}
        {%- set missing = [] -%}
        {%- if not found[0] -%}
            {%- do missing.append("raw.districts (materialise the `districts` asset, then a year: districts are "
                                  "published together with the first year that loads)") -%}
        {%- endif -%}
        {%- if not found[1] -%}
            {%- do missing.append("raw.ndvi_composites (materialise `ndvi_composite` and `raw_ndvi_composites` "
                                  "for at least one year)") -%}
        {%- endif -%}
        {%- if missing -%}
            {{ exceptions.raise_compiler_error(
                "Nothing to build yet: missing " ~ (missing | join("; ")) ~ ". Run `ndvi-demo` or materialise "
                ~ "those assets in the Dagster UI before `dbt build`.") }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
