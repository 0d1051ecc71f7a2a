{{ config(materialized='view') }}

-- Per area, current district and indicator: the Theil-Sen trend over every year with valid pixels, i.e. the
-- median of the slopes (value_j - value_i) / (year_j - year_i) over all pairs of such years (robust to one
-- odd year, e.g. a drought), in indicator units per year, with the number of years and the first and last
-- year. NULL slope below 3 years (`trend_null_reason` says so). A view: always current.
with valid_years as (

    select area_code, district_code, district_name, indicator, indicator_kind, threshold_name, year, value
    from {{ ref('ndvi_indicators_yearly') }}
    where value is not null

),

all_series as (

    -- every district and indicator, with or without valid years, so a district never disappears
    select distinct area_code, district_code, district_name, indicator, indicator_kind, threshold_name
    from {{ ref('ndvi_indicators_yearly') }}

),

pair_slopes as (

    select
        earlier.area_code,
        earlier.district_code,
        earlier.indicator,
        (later.value - earlier.value) / (later.year - earlier.year) as slope
    from valid_years as earlier
    inner join valid_years as later
        on later.area_code = earlier.area_code
        and later.district_code = earlier.district_code
        and later.indicator = earlier.indicator
        and later.year > earlier.year

),

series_spans as (

    select area_code, district_code, indicator, count(*) as n_years, min(year) as first_year,
           max(year) as last_year
    from valid_years
    group by area_code, district_code, indicator

),

median_slopes as (

    select area_code, district_code, indicator,
           percentile_cont(0.5) within group (order by slope) as slope_per_year
    from pair_slopes
    group by area_code, district_code, indicator

)

select
    all_series.area_code::text as area_code,
    all_series.district_code::text as district_code,
    all_series.district_name::text as district_name,
    all_series.indicator::text as indicator,
    all_series.indicator_kind::text as indicator_kind,
    all_series.threshold_name::text as threshold_name,
    coalesce(series_spans.n_years, 0)::integer as n_years,
    series_spans.first_year::integer as first_year,
    series_spans.last_year::integer as last_year,
    (case when series_spans.n_years >= 3 then median_slopes.slope_per_year end)::double precision
        as slope_per_year,
    (case when coalesce(series_spans.n_years, 0) < 3 then 'fewer than 3 years with valid pixels' end)::text
        as trend_null_reason
from all_series
left join series_spans
    on series_spans.area_code = all_series.area_code
    and series_spans.district_code = all_series.district_code
    and series_spans.indicator = all_series.indicator
left join median_slopes
    on median_slopes.area_code = all_series.area_code
    and median_slopes.district_code = all_series.district_code
    and median_slopes.indicator = all_series.indicator
