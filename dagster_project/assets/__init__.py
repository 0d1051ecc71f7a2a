"""Asset modules, one per step: vector inputs, imagery, dbt models, exports."""
