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

indicators_with_baseline as (

    -- the area's baseline year beside each row; an area without a configured baseline (no pipeline settings
    -- written) compares with its earliest year. A window, not a grouped subquery joined back: the planner
    -- ran such a subquery again for every row (minutes for 1,152 districts)
    select
        indicators.*,
        coalesce(configured_baselines.baseline_year, min(indicators.year) over (partition by indicators.area_code))
            as baseline_year
    from indicators
    left join configured_baselines
        on configured_baselines.area_code = indicators.area_code

),

baseline_values as (

    -- the baseline year's row of the same district and indicator, beside each year's row: a window, not a
    -- self-join, so the cost stays linear whatever the planner estimates (a nested loop over 14,000 districts'
    -- indicators ran for minutes)
    select
        *,
        bool_or(year = baseline_year) over series as baseline_computed,
        max(pixel_count) filter (where year = baseline_year) over series as baseline_pixel_count,
        max(value) filter (where year = baseline_year) over series as baseline_value
    from indicators_with_baseline
    window series as (partition by area_code, district_code, indicator)

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    district_name::text as district_name,
    year::integer as year,
    indicator::text as indicator,
    indicator_kind::text as indicator_kind,
    threshold_name::text as threshold_name,
    baseline_year::integer as baseline_year,
    value::double precision as value,
    baseline_value::double precision as baseline_value,
    (value - baseline_value)::double precision as change,
    (case
        when not baseline_computed then 'baseline year not computed'
        when baseline_pixel_count = 0 then 'no valid pixels in the baseline year'
        when pixel_count = 0 then 'no valid pixels in this year'
    end)::text as change_null_reason
from baseline_values
