{#- Generic data test: rows where min <= mean <= max does not hold (NULL statistics pass). -#}
{% test ordered_statistics(model, min_column='min_ndvi', mean_column='mean_ndvi', max_column='max_ndvi') %}
select *
from {{ model }}
where {{ mean_column }} is not null
  and not ({{ min_column }} <= {{ mean_column }} + 1e-9 and {{ mean_column }} <= {{ max_column }} + 1e-9)
{% endtest %}
