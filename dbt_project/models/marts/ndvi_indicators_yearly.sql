{{ config(materialized='view') }}

-- The published indicators per area, current district and year, one row each, so the change and trend
-- models treat them all alike: `mean_ndvi` (ndvi_stats_yearly), `median_ndvi`
-- (ndvi_stats_yearly_distribution) and `green_share_<class>` per green-share class of the area.
-- `value` is NULL when the district had no valid pixel that year.
with districts as (

    select area_code, district_code, district_name
    from {{ ref('stg_districts') }}

),

means as (

    select area_code, district_code, year, pixel_count, 'mean_ndvi' as indicator,
           'mean' as indicator_kind, null::text as threshold_name, mean_ndvi as value
    from {{ ref('ndvi_stats_yearly') }}

),

medians as (

    select area_code, district_code, year, pixel_count, 'median_ndvi' as indicator,
           'median' as indicator_kind, null::text as threshold_name, median_ndvi as value
    from {{ ref('ndvi_stats_yearly_distribution') }}

),

green_shares as (

    select area_code, district_code, year, pixel_count, 'green_share_' || threshold_name as indicator,
           'green_share' as indicator_kind, threshold_name, green_share as value
    from {{ ref('ndvi_green_share_yearly') }}

),

indicators as (

    select * from means
    union all
    select * from medians
    union all
    select * from green_shares

)

select
    indicators.area_code::text as area_code,
    indicators.district_code::text as district_code,
    districts.district_name::text as district_name,
    indicators.year::integer as year,
    indicators.indicator::text as indicator,
    indicators.indicator_kind::text as indicator_kind,
    indicators.threshold_name::text as threshold_name,
    indicators.pixel_count::bigint as pixel_count,
    indicators.value::double precision as value
from indicators
inner join districts
    on districts.area_code = indicators.area_code
    and districts.district_code = indicators.district_code
