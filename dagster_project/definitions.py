"""The code location loaded by ``dagster dev`` (see workspace.yaml)."""

import dagster as dg

defs = dg.Definitions(assets=[])
