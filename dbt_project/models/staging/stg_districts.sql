{{ config(materialized='view') }}

-- The published districts, as every mart sees them. `districts_version` is the same on every row: a hash of
-- all codes, names and geometries, written by the loader. Marts store it per row, so a later run can tell
-- which years were computed for districts that have changed since.
with published_districts as (

    select district_code, district_name, geometry, districts_version
    from {{ source('raw', 'districts') }}

)

select
    district_code::text as district_code,
    district_name::text as district_name,
    geometry,
    districts_version::text as districts_version
from published_districts
