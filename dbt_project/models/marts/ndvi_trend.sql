{{ config(materialized='view') }}

-- Per area, current district and indicator: the Theil-Sen trend over every year with valid pixels, i.e. the
-- median of the slopes (value_j - value_i) / (year_j - year_i) over all pairs of such years (robust to one
-- odd year, e.g. a drought), in indicator units per year, with the number of years and the first and last
-- year. NULL slope below 3 years (`trend_null_reason` says so). A view: always current.
with series as (

    -- every district and indicator, with or without valid years, so a district never disappears; its valid
    -- years and values in year order
    select
        area_code, district_code, district_name, indicator, indicator_kind, threshold_name,
        count(value) as n_years,
        min(year) filter (where value is not null) as first_year,
        max(year) filter (where value is not null) as last_year,
        array_agg(year order by year) filter (where value is not null) as years,
        array_agg(value order by year) filter (where value is not null) as vals
    from {{ ref('ndvi_indicators_yearly') }}
    group by area_code, district_code, district_name, indicator, indicator_kind, threshold_name

),

median_slopes as (

    -- the median slope over all pairs of valid years, computed within each series (no join between series:
    -- linear in the number of series whatever the planner estimates)
    select
        series.*,
        (
            select percentile_cont(0.5) within group (
                order by (series.vals[later] - series.vals[earlier]) / (series.years[later] - series.years[earlier]))
            from generate_series(1, series.n_years::integer) as earlier
            cross join lateral generate_series(earlier + 1, series.n_years::integer) as later
        ) as slope_per_year
    from series

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    district_name::text as district_name,
    indicator::text as indicator,
    indicator_kind::text as indicator_kind,
    threshold_name::text as threshold_name,
    n_years::integer as n_years,
    first_year::integer as first_year,
    last_year::integer as last_year,
    (case when n_years >= 3 then slope_per_year end)::double precision as slope_per_year,
    (case when n_years < 3 then 'fewer than 3 years with valid pixels' end)::text as trend_null_reason
from median_slopes
