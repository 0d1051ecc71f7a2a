{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='district_code',
    on_schema_change='fail'
  )
}}

-- Per district, the statistics of the newest year that has valid pixels. A run only ever replaces a
-- district's row with a candidate from a year at least as new as the stored one, and never with a year
-- without valid pixels (all cloud), so the result does not depend on the order years arrive in and a
-- failed or cloudy year never erases the last good values.
with yearly_with_valid_pixels as (

    select *
    from {{ ref('ndvi_stats_yearly') }}
    where pixel_count > 0
    {{ year_filter('year', prefix='and') }}

),

newest_candidate_per_district as (

    select distinct on (district_code) *
    from yearly_with_valid_pixels
    order by district_code, year desc

),

accepted_candidates as (

    select candidate.*
    from newest_candidate_per_district as candidate
    {% if is_incremental() %}
    left join {{ this }} as stored
        on stored.district_code = candidate.district_code
    where stored.district_code is null
        or candidate.year > stored.source_year
        or (
            candidate.year = stored.source_year
            and (candidate.pixel_count, candidate.min_ndvi, candidate.max_ndvi, candidate.mean_ndvi,
                 candidate.stddev_ndvi, candidate.district_name)
            is distinct from
                (stored.pixel_count, stored.min_ndvi, stored.max_ndvi, stored.mean_ndvi,
                 stored.stddev_ndvi, stored.district_name)
        )
    {% endif %}

)

select
    district_code::text as district_code,
    district_name::text as district_name,
    year::integer as source_year,
    pixel_count::bigint as pixel_count,
    valid_fraction::double precision as valid_fraction,
    min_ndvi::double precision as min_ndvi,
    max_ndvi::double precision as max_ndvi,
    mean_ndvi::double precision as mean_ndvi,
    stddev_ndvi::double precision as stddev_ndvi,
    now()::timestamptz as updated_at
from accepted_candidates
