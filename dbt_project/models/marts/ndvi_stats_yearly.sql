{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['area_code', 'year'],
    on_schema_change='append_new_columns',
    pre_hook=zonal_session_settings(),
    post_hook=["create unique index if not exists {{ this.name }}_uq on {{ this }} (area_code, district_code, year)"]
  )
}}

-- Per area, district and year: NDVI statistics over the composite's valid pixels whose centre lies in the
-- district (ST_Clip counts a pixel by its centre). Band 2 (clear-day count) is never nodata inside
-- the composite, so clipping it counts every pixel of the district, valid or not.
--
-- A run computes every area-year that is new, whose composite was re-loaded since (`composite_loaded_at`),
-- or that was computed for another version of the area's districts: after a re-districting, the first run
-- brings every year to the current districts, and no year keeps a district that no longer exists.
with districts as (

    select area_code, district_code, district_name, geometry, districts_version
    from {{ ref('stg_districts') }}

),

current_versions as (

    select area_code, min(districts_version) as districts_version
    from districts
    group by area_code

),

tiled_years as (

    select area_code, year, max(composite_loaded_at) as composite_loaded_at
    from {{ ref('stg_ndvi_tiles') }}
    group by area_code, year

),

area_years_of_run as (

    select tiled_years.area_code, tiled_years.year, tiled_years.composite_loaded_at
    from tiled_years
    {% if is_incremental() %}
    left join (
        select area_code, year, max(composite_loaded_at) as composite_loaded_at,
               max(districts_version) as districts_version
        from {{ this }}
        group by area_code, year
    ) as stored
        on stored.area_code = tiled_years.area_code and stored.year = tiled_years.year
    left join current_versions
        on current_versions.area_code = tiled_years.area_code
    where stored.year is null
        or stored.composite_loaded_at is distinct from tiled_years.composite_loaded_at
        or stored.districts_version is distinct from current_versions.districts_version
    {% endif %}

),

clipped_tiles as (

    select
        tiles.area_code,
        tiles.year,
        districts.district_code,
        st_clip(tiles.rast, districts.geometry, true) as rast
    from {{ ref('stg_ndvi_tiles') }} as tiles
    inner join area_years_of_run
        on area_years_of_run.area_code = tiles.area_code and area_years_of_run.year = tiles.year
    inner join districts
        on districts.area_code = tiles.area_code
        and st_intersects(st_convexhull(tiles.rast), districts.geometry)

),

pixel_stats as materialized (

    select
        area_code,
        year,
        district_code,
        st_summarystatsagg(rast, 1, true, 1) as ndvi,
        st_summarystatsagg(rast, 2, true, 1) as observations
    from clipped_tiles
    group by area_code, year, district_code

),

district_years as (

    select
        districts.area_code,
        districts.district_code,
        districts.district_name,
        districts.districts_version,
        area_years_of_run.year,
        area_years_of_run.composite_loaded_at
    from districts
    inner join area_years_of_run
        on area_years_of_run.area_code = districts.area_code

),

district_stats as (

    select
        district_years.area_code,
        district_years.district_code,
        district_years.district_name,
        district_years.year,
        district_years.districts_version,
        district_years.composite_loaded_at,
        coalesce((pixel_stats.ndvi).count, 0) as pixel_count,
        coalesce((pixel_stats.observations).count, 0) as district_pixel_count,
        pixel_stats.ndvi,
        pixel_stats.observations
    from district_years
    left join pixel_stats
        on pixel_stats.area_code = district_years.area_code
        and pixel_stats.district_code = district_years.district_code
        and pixel_stats.year = district_years.year

)

-- statistics stay NULL (not 0) when a district had no valid pixel that year (e.g. all cloud)
select
    area_code::text as area_code,
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
    districts_version::text as districts_version,
    composite_loaded_at::timestamptz as composite_loaded_at
from district_stats
