{{ config(materialized='view') }}

-- Per area, district, indicator and year: the change against the area's baseline year (config
-- `statistics.baseline_year`, default the area's earliest year; the EU Nature Restoration Regulation uses
-- 2024). NULL, with `change_null_reason`, when the baseline year is not computed yet, when the district had
-- no valid pixel in the baseline year, or none in this year. A view: always current, whatever order the
-- years arrived in and after a re-districting.
with indicators as (

    select area_code, district_code, district_name, year, indicator, indicator_kind, threshold_name,
           pixel_count, value
    from {{ ref('ndvi_indicators_yearly') }}

),

configured_baselines as (

    select area_code, baseline_year
    from {{ ref('stg_change_baselines') }}

),

area_baselines as (

    -- an area without a configured baseline (no pipeline settings written) compares with its earliest year
    select
        indicators.area_code,
        coalesce(min(configured_baselines.baseline_year), min(indicators.year)) as baseline_year
    from indicators
    left join configured_baselines
        on configured_baselines.area_code = indicators.area_code
    group by indicators.area_code

),

baseline_values as (

    select indicators.area_code, indicators.district_code, indicators.indicator,
           indicators.pixel_count as baseline_pixel_count, indicators.value as baseline_value
    from indicators
    inner join area_baselines
        on area_baselines.area_code = indicators.area_code
        and area_baselines.baseline_year = indicators.year

)

select
    indicators.area_code::text as area_code,
    indicators.district_code::text as district_code,
    indicators.district_name::text as district_name,
    indicators.year::integer as year,
    indicators.indicator::text as indicator,
    indicators.indicator_kind::text as indicator_kind,
    indicators.threshold_name::text as threshold_name,
    area_baselines.baseline_year::integer as baseline_year,
    indicators.value::double precision as value,
    baseline_values.baseline_value::double precision as baseline_value,
    (indicators.value - baseline_values.baseline_value)::double precision as change,
    (case
        when baseline_values.district_code is null then 'baseline year not computed'
        when baseline_values.baseline_pixel_count = 0 then 'no valid pixels in the baseline year'
        when indicators.pixel_count = 0 then 'no valid pixels in this year'
    end)::text as change_null_reason
from indicators
inner join area_baselines
    on area_baselines.area_code = indicators.area_code
left join baseline_values
    on baseline_values.area_code = indicators.area_code
    and baseline_values.district_code = indicators.district_code
    and baseline_values.indicator = indicators.indicator
