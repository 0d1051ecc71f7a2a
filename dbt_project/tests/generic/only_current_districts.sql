{#- Generic data test: rows whose (area_code, district_code) is not a published district (stale after a
    re-districting). -#}
{% test only_current_districts(model) %}
select stored.area_code, stored.district_code
from {{ model }} as stored
where not exists (
    select
    from {{ ref('stg_districts') }} as current_districts
    where current_districts.area_code = stored.area_code
        and current_districts.district_code = stored.district_code
)
{% endtest %}
