{#- Generic data test: rows where the non-NULL `columns` are not in ascending order (NULL rows pass). -#}
{% test ordered_columns(model, columns) %}
select *
from {{ model }}
where {{ columns[0] }} is not null
  and not (
    {%- for column in columns[1:] %}
    {{ columns[loop.index0] }} <= {{ column }} + 1e-12{% if not loop.last %} and{% endif %}
    {%- endfor %}
  )
{% endtest %}
