{{ config(materialized='view') }}

-- The baseline year of every area's change models (written by the pipeline from the area config).
with configured_baselines as (

    select area_code, baseline_year
    from {{ source('raw', 'change_baselines') }}

)

select
    area_code::text as area_code,
    baseline_year::integer as baseline_year
from configured_baselines
