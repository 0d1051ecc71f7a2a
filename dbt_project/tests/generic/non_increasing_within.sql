{#- Generic data test: within each group of `group_by`, `column_name` must not rise as `order_by` rises
    (e.g. a green share can only fall as its NDVI threshold rises). NULLs pass. -#}
{% test non_increasing_within(model, column_name, group_by, order_by) %}
with ordered as (
    select
        *,
        lag({{ column_name }}) over (partition by {{ group_by | join(', ') }} order by {{ order_by }})
            as previous_value
    from {{ model }}
)
select *
from ordered
where {{ column_name }} > previous_value
{% endtest %}
