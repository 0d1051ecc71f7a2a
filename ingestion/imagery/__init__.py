"""From L2A items to a yearly NDVI composite: radiometry, SCL masking, the target grid, compositing."""
