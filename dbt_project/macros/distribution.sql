{#-
  Helpers for ndvi_stats_yearly_distribution: exact percentiles and threshold counts of a district's valid
  pixels, computed by PostGIS's C code on one raster that holds every pixel of the district.

  Why one raster per district: PostGIS has no aggregate for quantiles across tiles, and per-tile histograms
  only add up when their bins are fine, which ST_Histogram pays for with a linear scan of the bins per pixel
  (measured: far slower than a sort). Unnesting the pixels into SQL rows for percentile_cont is exact but costs
  ~1 µs per pixel (measured 2.5 s on the 2.1 Mpx Enschede case against 0.25 s for everything below). So the
  masked tiles' band-1 pixel bytes are concatenated (string_agg of bytea: a memcpy per tile) and wrapped in a
  raster header; ST_Quantile then sorts them in C (R type 7 = numpy's default "linear"), and _ST_Histogram
  counts them against a threshold.
-#}

{#-
  The pixel bytes of a one-band, 32-bit float raster (the composite's band 1: float32, nodata -9999), as
  returned by `ndvi_pixel_bytes`, wrapped into a raster of width min(n, 65535) (WKB dimensions are uint16),
  padded with nodata to whole rows. Geo-referencing is meaningless (scale 1, origin 0, SRID 0): only the
  values matter. Layout: PostGIS raster WKB (raster/doc/RFC2-WellKnownBinaryFormat), little-endian.
-#}
{% macro ndvi_pixels_raster(pixel_bytes) -%}
    {%- set n_pixels = "(length(" ~ pixel_bytes ~ ") / 4)" -%}
    {%- set width = "greatest(least(" ~ n_pixels ~ ", 65535), 1)" -%}
    {%- set height = "((" ~ n_pixels ~ " + " ~ width ~ " - 1) / " ~ width ~ ")" -%}
    st_rastfromwkb(
        '\x01'::bytea                                                      -- little-endian
        || '\x0000'::bytea || '\x0100'::bytea                               -- version 0, one band
        || '\x000000000000f03f'::bytea || '\x000000000000f0bf'::bytea       -- scale x 1, scale y -1
        || '\x0000000000000000'::bytea || '\x0000000000000000'::bytea       -- upper-left x, y
        || '\x0000000000000000'::bytea || '\x0000000000000000'::bytea       -- skew x, y
        || '\x00000000'::bytea                                              -- SRID 0
        || substring(int4send({{ width }}) from 4 for 1) || substring(int4send({{ width }}) from 3 for 1)
        || substring(int4send({{ height }}) from 4 for 1) || substring(int4send({{ height }}) from 3 for 1)
        || '\x4a'::bytea                                                    -- 32BF, has nodata
        || '\x003c1cc6'::bytea                                              -- nodata -9999 as float32
        || {{ pixel_bytes }}
        || decode(repeat('003c1cc6', ({{ width }} * {{ height }} - {{ n_pixels }})::integer), 'hex')
    )
{%- endmacro %}

{#-
  Band 1's pixel bytes of a one-band float32 raster (its WKB after the 61-byte raster header and the band's
  1-byte type and 4-byte nodata value). The caller passes rasters of exactly one 32BF band.
-#}
{% macro ndvi_pixel_bytes(rast) -%}
    substring(st_asbinary({{ rast }}) from 67)
{%- endmacro %}

{#-
  The valid pixels of band 1 counted into the bins (-inf, t1), [t1, t2), ..., [tk, tk + 4] of the ascending
  thresholds array, as bigint[] of k + 1 counts (NULL when the raster has no valid pixel), by ONE _ST_Histogram
  pass (the function behind ST_Histogram; it takes explicit min/max). A value goes to the first bin whose
  upper edge is above it, compared strictly (values below min land in the first bin), so the bins from j + 1
  on hold the values >= tj, and the sum of all bins is the number of valid pixels (NDVI <= 1 < tk + 4). Edges
  are built in C as min + width, then + (t2 - t1), ...: min 0 and width t1 (t1 > 0), min 2 t1 and width -t1
  (t1 < 0) or min -1 and width 1 (t1 = 0) make the first edge t1 exactly, and the config validator
  (ingestion.config.histogram_edges) checks that every float32 NDVI value lies on the same side of each later
  edge as of its threshold, so the counts are exact. With no thresholds, one bin: the valid pixels.
-#}
{% macro threshold_bin_counts(rast, thresholds) -%}
    {%- set t1 = "(" ~ thresholds ~ ")[1]" -%}
    (
        select array_agg(histogram.count order by histogram.min)
        from _st_histogram(
            {{ rast }}, 1, true, 1, cardinality({{ thresholds }}) + 1,
            array(
                select case when threshold.rank = 1 then
                                case when threshold.ndvi > 0 then threshold.ndvi
                                     when threshold.ndvi < 0 then -threshold.ndvi else 1 end
                            else threshold.ndvi - ({{ thresholds }})[threshold.rank - 1] end
                from unnest({{ thresholds }}) with ordinality as threshold(ndvi, rank)
                order by threshold.rank
            ) || array[4::double precision],
            false,
            case when {{ t1 }} > 0 then 0 when {{ t1 }} < 0 then 2 * {{ t1 }} when {{ t1 }} = 0 then -1
                 else -2 end::double precision,
            coalesce(({{ thresholds }})[cardinality({{ thresholds }})], -2) + 4
        ) as histogram
    )
{%- endmacro %}
