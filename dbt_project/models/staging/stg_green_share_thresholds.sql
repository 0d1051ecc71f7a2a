{{ config(materialized='view') }}

-- The green-share classes of every area (written by the pipeline from the area config), ordered by threshold.
with configured_thresholds as (

    select area_code, threshold_name, threshold_label, ndvi_threshold
    from {{ source('raw', 'green_share_thresholds') }}

)

select
    area_code::text as area_code,
    threshold_name::text as threshold_name,
    threshold_label::text as threshold_label,
    ndvi_threshold::double precision as ndvi_threshold,
    (row_number() over (partition by area_code order by ndvi_threshold))::integer as threshold_rank
from configured_thresholds
