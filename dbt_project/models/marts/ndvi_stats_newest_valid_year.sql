{{ config(materialized='view') }}

-- Per area and current district, its row of `ndvi_stats_yearly` from the newest year with valid pixels. Years without
-- valid pixels (all cloud) are skipped, so they never hide an older good year. `ndvi_stats_yearly` holds
-- only current districts (a re-districting recomputes every year), so neither does this view.
with current_districts as (

    select area_code, district_code
    from {{ ref('stg_districts') }}

),

yearly_with_valid_pixels as (

    -- only current districts, even if a year of stale rows were left behind (belt and braces: a run of
    -- ndvi_stats_yearly recomputes every year computed for an older districts version)
    select yearly.*
    from {{ ref('ndvi_stats_yearly') }} as yearly
    inner join current_districts
        on current_districts.area_code = yearly.area_code
        and current_districts.district_code = yearly.district_code
    where yearly.pixel_count > 0

)

select distinct on (area_code, district_code) *
from yearly_with_valid_pixels
order by area_code, district_code, year desc
