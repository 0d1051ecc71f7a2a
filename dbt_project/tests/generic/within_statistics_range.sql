{#- Generic data test: rows whose `columns` fall outside [min_column, max_column] of the matching row of
    `range_model` (joined on `keys`). Rows without a matching statistic pass. -#}
{% test within_statistics_range(model, columns, range_model, keys, min_column='min_ndvi', max_column='max_ndvi') %}
select tested.*
from {{ model }} as tested
inner join {{ range_model }} as ranges
    on {% for key in keys %}ranges.{{ key }} = tested.{{ key }}{% if not loop.last %} and {% endif %}{% endfor %}
where ranges.{{ min_column }} is not null
  and (
    {%- for column in columns %}
    tested.{{ column }} is null
    or tested.{{ column }} < ranges.{{ min_column }} - 1e-12
    or tested.{{ column }} > ranges.{{ max_column }} + 1e-12{% if not loop.last %} or{% endif %}
    {%- endfor %}
  )
{% endtest %}
