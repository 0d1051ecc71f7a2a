{{ config(materialized='view') }}

-- Per area, district, year and green-share class: the share of the district's valid pixels with
-- NDVI >= the class threshold (the counts of ndvi_stats_yearly_distribution, one row per class).
with distributions as (

    select
        area_code, district_code, year, pixel_count,
        green_threshold_names, green_ndvi_thresholds, green_pixel_counts
    from {{ ref('ndvi_stats_yearly_distribution') }}

),

class_counts as (

    select
        distributions.area_code,
        distributions.district_code,
        distributions.year,
        distributions.pixel_count,
        class.threshold_name,
        class.ndvi_threshold,
        class.green_pixel_count
    from distributions
    cross join lateral unnest(
        distributions.green_threshold_names,
        distributions.green_ndvi_thresholds,
        distributions.green_pixel_counts
    ) as class(threshold_name, ndvi_threshold, green_pixel_count)

),

thresholds as (

    select area_code, threshold_name, threshold_label
    from {{ ref('stg_green_share_thresholds') }}

)

select
    class_counts.area_code::text as area_code,
    class_counts.district_code::text as district_code,
    class_counts.year::integer as year,
    class_counts.threshold_name::text as threshold_name,
    coalesce(thresholds.threshold_label, class_counts.threshold_name)::text as threshold_label,
    class_counts.ndvi_threshold::double precision as ndvi_threshold,
    class_counts.pixel_count::bigint as pixel_count,
    class_counts.green_pixel_count::bigint as green_pixel_count,
    -- NULL, not 0, when the district had no valid pixel that year (nothing was observed)
    (case when class_counts.pixel_count > 0
          then class_counts.green_pixel_count::double precision / class_counts.pixel_count end
    )::double precision as green_share
from class_counts
left join thresholds
    on thresholds.area_code = class_counts.area_code
    and thresholds.threshold_name = class_counts.threshold_name
