{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['area_code', 'year'],
    on_schema_change='append_new_columns',
    pre_hook=zonal_session_settings(),
    post_hook=["create unique index if not exists {{ this.name }}_uq on {{ this }} (area_code, district_code, year)",
               "analyze {{ this }}"]
  )
}}

-- Analyzed after each build: the exports read it right away, before autovacuum has sampled the new rows (at
-- 14,000 districts a plan made without statistics cost the yearly export 20 s instead of 1 s).

-- Per area, district and year: NDVI statistics over the composite's valid pixels whose centre lies in the
-- district (the pixel-centre rule of ST_Clip, whose rasterisation district_tile_masks stores). Band 2
-- (clear-day count) is never nodata inside the composite, so masking it counts every pixel of the
-- district, valid or not.
--
-- A run computes every area-year that is new, whose composite was re-loaded since (`composite_loaded_at`),
-- or that was computed for another version of the area's districts: after a re-districting, the first run
-- brings every year to the current districts, and no year keeps a district that no longer exists.
with districts as (

    select area_code, district_code, district_name, districts_version
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

-- materialized: computed once, then joined. Inlined (PostgreSQL inlines a CTE used once), the planner may put
-- it on the inner side of a nested loop under district_stats' left join, where it re-runs every district's
-- LATERAL aggregate once per outer row: measured on the Enschede benchmark once the tables had statistics,
-- 100 aggregates instead of 10 and 2.3 s instead of 0.3 s.
pixel_stats as materialized (

    -- The zonal core. Per district and area-year, ST_SummaryStatsAgg over the district's tiles, each masked to
    -- the district's pixels with the precomputed mask of district_tile_masks (pixels outside set to nodata by
    -- ST_SetValues, both bands) or taken whole when it lies inside the district; no polygon is touched here.
    -- Measured on 2 cores against ST_Clip(tile, district): the mask costs about nothing, the clip was most
    -- of the time (benchmarks/zonal_stats.py). The plan shape matters as much:
    --   * LATERAL per district-year streams: one district's tiles are masked and aggregated, then the next.
    --     The plain join + GROUP BY either sorted or hash-spilled every masked raster to disk (a 25 Mpx
    --     composite is 200 MB of pixels) and, with the mask inside both aggregate calls, masked twice.
    --   * the inner OFFSET 0 masks each tile once for both ST_SummaryStatsAgg calls (one pass per band);
    --     the outer OFFSET 0 keeps `(ndvi).count` etc. from re-running the aggregate per field.
    --   * district_pixel_count stays band 2's count: band 2's sum (mean_clear_observations) needs its pass
    --     over the district's pixels anyway, so taking the count from the tile size or the mask saved nothing.
    --   * no parallel plan: ST_SummaryStatsAgg has no combine function, so a parallel join only moves the
    --     masking to workers while the leader still aggregates; it measured slower here.
    select
        districts.area_code,
        districts.district_code,
        area_years_of_run.year,
        district_pixels.ndvi,
        district_pixels.observations
    from districts
    inner join area_years_of_run
        on area_years_of_run.area_code = districts.area_code
    cross join lateral (
        select
            st_summarystatsagg(masked_tiles.rast, 1, true, 1) as ndvi,
            st_summarystatsagg(masked_tiles.rast, 2, true, 1) as observations
        from (
            select
                case
                    -- st_band copies the tile out of TOAST once; passed as is, both aggregate calls would
                    -- fetch and detoast it again (measured: ~0.3 s of 25 Mpx, i.e. 5-10 % of L)
                    when masks.covers_cell then st_band(tiles.rast, array[1, 2])
                    else st_setvalues(
                        st_setvalues(tiles.rast, 1, 1, 1, masks.pixel_mask, 1::double precision),
                        2, 1, 1, masks.pixel_mask, 1::double precision
                    )
                end as rast
            from {{ ref('district_tile_masks') }} as masks
            inner join {{ ref('stg_ndvi_tiles') }} as tiles
                -- the mask's cell is st_envelope of a tile of the same grid, so its corner finds the tile
                -- exactly: a btree lookup on stg_ndvi_tiles_cell_idx instead of the GiST `hull ~= cell` one
                -- (measured: ~0.3 s of 43,000 district-tile pairs on L, ~10 %). The opposite corner must
                -- match too: the cells of another grid of the area (another year's origin or extent, whose
                -- edge tiles are narrower or wider) may share a tile's upper-left corner.
                on st_xmin(st_envelope(tiles.rast)) = st_xmin(masks.cell)
                and st_ymax(st_envelope(tiles.rast)) = st_ymax(masks.cell)
                and st_xmax(st_envelope(tiles.rast)) = st_xmax(masks.cell)
                and st_ymin(st_envelope(tiles.rast)) = st_ymin(masks.cell)
            where masks.area_code = districts.area_code
                and masks.district_code = districts.district_code
                and tiles.area_code = districts.area_code
                and tiles.year = area_years_of_run.year
            -- tiles in one fixed order (by the cell's corner, served by district_tile_masks_district_order_idx):
            -- ST_SummaryStatsAgg accumulates in input order, so another order changes stddev_ndvi and mean_ndvi
            -- in their last bits (~1e-16), and a re-run beside other areas' rows (a different heap order or
            -- plan) would rewrite values that did not change
            order by st_xmin(masks.cell), st_ymax(masks.cell)
            offset 0
        ) as masked_tiles
        offset 0
    ) as district_pixels

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
