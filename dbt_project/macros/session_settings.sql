{#-
  Session settings for the zonal statistics: no NOTICE flood from ST_SummaryStats on tiles whose pixels are all
  nodata once masked. (Parallel-plan settings were dropped: the model's LATERAL plan never goes parallel, and a
  parallel join measured slower because ST_SummaryStatsAgg, having no combine function, still runs in the leader.)
-#}
{% macro zonal_session_settings() -%}
    set client_min_messages = warning
{%- endmacro %}
