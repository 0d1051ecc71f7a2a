{{ config(materialized='view') }}

-- The published districts of every area, as every mart sees them. `districts_version` is the same on every
-- row of an area: a hash of all its codes, names and geometries, written by the loader. Marts store it per
-- row, so a later run can tell which years were computed for districts that have changed since.
with published_districts as (

    select area_code, district_code, district_name, geometry, districts_version
    from {{ source('raw', 'districts') }}

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    district_name::text as district_name,
    geometry,
    districts_version::text as districts_version
from published_districts
