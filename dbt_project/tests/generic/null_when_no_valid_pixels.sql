{#- Generic data test: statistics must be NULL exactly when there are no valid pixels. -#}
{% test null_when_no_valid_pixels(model, column_name, count_column='pixel_count') %}
select *
from {{ model }}
where ({{ count_column }} = 0 and {{ column_name }} is not null)
   or ({{ count_column }} > 0 and {{ column_name }} is null)
{% endtest %}
