{{ config(materialized='view') }}

-- Per district and year with valid pixels: mean NDVI and its change from the previous year that had
-- valid pixels for that district (years without valid pixels are skipped, not treated as zero).
with yearly_with_valid_pixels as (

    select area_code, district_code, district_name, year, mean_ndvi
    from {{ ref('ndvi_stats_yearly') }}
    where pixel_count > 0

),

with_previous_year as (

    select
        *,
        lag(year) over (partition by area_code, district_code order by year) as previous_year,
        lag(mean_ndvi) over (partition by area_code, district_code order by year) as previous_mean_ndvi
    from yearly_with_valid_pixels

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    district_name::text as district_name,
    year::integer as year,
    previous_year::integer as previous_year,
    mean_ndvi::double precision as mean_ndvi,
    (mean_ndvi - previous_mean_ndvi)::double precision as mean_ndvi_change
from with_previous_year
