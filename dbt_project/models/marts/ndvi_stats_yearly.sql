{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='year',
    on_schema_change='append_new_columns',
    pre_hook=zonal_session_settings(),
    post_hook=["create unique index if not exists {{ this.name }}_uq on {{ this }} (district_code, year)"]
  )
}}

-- Per district and year: NDVI statistics over the composite's valid pixels whose centre lies in the
-- district (ST_Clip counts a pixel by its centre). Band 2 (clear-day count) is never nodata inside
-- the composite, so clipping it counts every pixel of the district, valid or not.
--
-- A run computes the requested year (var `year`, or every year) and also every stored year that was
-- computed for another version of the districts: after a re-districting, the first run brings all years
-- to the current districts, and no year keeps a district that no longer exists.
with districts as (

    select district_code, district_name, geometry, districts_version
    from {{ ref('stg_districts') }}

),

current_version as (

    select min(districts_version) as districts_version
    from districts

),

requested_years as (

    select distinct year
    from {{ ref('stg_ndvi_tiles') }}
    {{ year_filter('year') }}

),

{% if is_incremental() %}
years_computed_for_other_districts as (

    select distinct stored.year
    from {{ this }} as stored
    cross join current_version
    where stored.districts_version is distinct from current_version.districts_version
        and stored.year in (select year from {{ ref('stg_ndvi_tiles') }})

),
{% endif %}

years_of_run as (

    select year from requested_years
    {% if is_incremental() %}
    union
    select year from years_computed_for_other_districts
    {% endif %}

),

clipped_tiles as (

    select
        tiles.year,
        districts.district_code,
        st_clip(tiles.rast, districts.geometry, true) as rast
    from {{ ref('stg_ndvi_tiles') }} as tiles
    inner join districts
        on st_intersects(st_convexhull(tiles.rast), districts.geometry)
    where tiles.year in (select year from years_of_run)

),

pixel_stats as materialized (

    select
        year,
        district_code,
        st_summarystatsagg(rast, 1, true, 1) as ndvi,
        st_summarystatsagg(rast, 2, true, 1) as observations
    from clipped_tiles
    group by year, district_code

),

district_years as (

    select districts.district_code, districts.district_name, districts.districts_version, years_of_run.year
    from districts
    cross join years_of_run

),

district_stats as (

    select
        district_years.district_code,
        district_years.district_name,
        district_years.year,
        district_years.districts_version,
        coalesce((pixel_stats.ndvi).count, 0) as pixel_count,
        coalesce((pixel_stats.observations).count, 0) as district_pixel_count,
        pixel_stats.ndvi,
        pixel_stats.observations
    from district_years
    left join pixel_stats
        on pixel_stats.district_code = district_years.district_code
        and pixel_stats.year = district_years.year

)

-- statistics stay NULL (not 0) when a district had no valid pixel that year (e.g. all cloud)
select
    district_code::text as district_code,
    district_name::text as district_name,
    year::integer as year,
    pixel_count::bigint as pixel_count,
    district_pixel_count::bigint as district_pixel_count,
    (case when district_pixel_count > 0 then pixel_count::double precision / district_pixel_count else 0 end
    )::double precision as valid_fraction,
    (case when pixel_count > 0 then (ndvi).min end)::double precision as min_ndvi,
    (case when pixel_count > 0 then (ndvi).max end)::double precision as max_ndvi,
    (case when pixel_count > 0 then (ndvi).mean end)::double precision as mean_ndvi,
    (case when pixel_count > 0 then (ndvi).stddev end)::double precision as stddev_ndvi,
    (case when district_pixel_count > 0 then (observations).mean end)::double precision
        as mean_clear_observations,
    districts_version::text as districts_version
from district_stats
