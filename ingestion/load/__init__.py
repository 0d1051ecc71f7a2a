"""Loading districts and composites into PostGIS (schema ``raw``)."""
