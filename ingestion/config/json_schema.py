"""The config file's JSON schema for editors (``ndvi-config-schema``; a copy is
``dagster_project/configs/area.schema.json``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from ingestion.config.schema import AreaConfig


def config_json_schema() -> dict[str, Any]:
    """The JSON schema of a config file, for editors (YAML language server, VS Code): one area at the top
    level, or ``areas`` (a list of areas) with top-level defaults."""
    schema = AreaConfig.model_json_schema(by_alias=True, mode="validation")
    schema["properties"].pop("source_file", None)
    schema["$defs"]["DistrictsConfig"]["properties"].pop("area_value", None)
    area = {k: schema.pop(k) for k in ("properties", "required", "additionalProperties", "description")}
    area["type"] = "object"
    area["title"] = "Area"
    schema["$defs"]["Area"] = area
    defaults = {**area, "required": [], "title": "Defaults for every area"}
    defaults["properties"] = {**area["properties"], "areas": {
        "type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Area"},
        "description": "the areas; top-level keys are defaults each area may override"}}
    defaults["properties"].pop("area")
    schema["title"] = "NDVI pipeline config"
    schema["anyOf"] = [{"$ref": "#/$defs/Area"}, {**defaults, "required": ["areas"]}]
    schema.pop("type", None)
    return schema


def main() -> int:
    """``ndvi-config-schema``: print the config's JSON schema."""
    json.dump(config_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
