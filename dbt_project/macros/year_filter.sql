{#-
  `where <column> = <year>` when the run is for one year (dbt var `year`, set by Dagster from the partition
  key), nothing otherwise (every year). The value is validated as an integer 2015..2100 before it reaches SQL.
-#}
{% macro year_filter(column, prefix='where') -%}
    {%- set year = var('year', none) -%}
    {%- if year is not none and year != '' -%}
        {{ prefix }} {{ column }} = {{ validated_year(year) }}
    {%- endif -%}
{%- endmacro %}

{% macro validated_year(value) -%}
    {%- set text = value | string | trim -%}
    {%- if not text.isdigit() or (text | int) < 2015 or (text | int) > 2100 -%}
        {{ exceptions.raise_compiler_error("var 'year' must be a year 2015..2100, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ text | int }}
{%- endmacro %}
