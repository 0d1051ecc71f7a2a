"""Outputs for people: GeoJSON layers, map classification breaks, PNG previews."""
