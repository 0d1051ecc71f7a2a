"""Deterministic synthetic demo data: a static STAC catalog of Sentinel-2-like L2A items plus districts."""
