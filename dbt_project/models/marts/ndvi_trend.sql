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
    -- linear in the number of series whatever the planner estimates). The pairs come from the series' own
    -- arrays (unnest, estimated at 10 rows each): generate_series over a column is estimated at 1,000 rows,
    -- which priced this view above jit_above_cost and made every read of one area spend 0.5 s compiling
    select
        series.*,
        (
            select percentile_cont(0.5) within group (
                order by (later.value - earlier.value) / (later.year - earlier.year))
            from unnest(series.years, series.vals) with ordinality as earlier (year, value, position)
            inner join unnest(series.years, series.vals) with ordinality as later (year, value, position)
                on later.position > earlier.position
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
