{{ config(materialized='view') }}

-- Per area and current district, its row of `ndvi_stats_yearly` from the newest year with valid pixels. Years without
-- valid pixels (all cloud) are skipped, so they never hide an older good year. `ndvi_stats_yearly` holds
-- only current districts (a re-districting recomputes every year), so neither does this view.
with yearly_with_valid_pixels as (

    select *
    from {{ ref('ndvi_stats_yearly') }}
    where pixel_count > 0

)

select distinct on (area_code, district_code) *
from yearly_with_valid_pixels
order by area_code, district_code, year desc
