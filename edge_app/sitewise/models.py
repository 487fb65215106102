"""SiteWise asset model definitions: a packaging-line model and a site model whose hierarchy holds lines.

The outputs are ``CreateAssetModel`` requests (``aws iotsitewise create-asset-model --cli-input-json``).
Models reference each other by external id (``childAssetModelId: "externalId:<id>"``), which SiteWise
accepts in place of a UUID, so both files can be written before either model exists. Create the line
model first. Every measurement of `MEASUREMENTS` is a ``measurement`` property of the line model; after
creating one asset per line, set each property's alias to `property_alias` (listed by `alias_table`) so
the MQTT/IoT-rule data lands on it.
"""

from __future__ import annotations

from edge_app.sitewise.measurements import DEFAULT_ALIAS_TEMPLATE, MEASUREMENTS, property_alias

LINE_MODEL_EXTERNAL_ID = "edge-app-packaging-line"
SITE_MODEL_EXTERNAL_ID = "edge-app-packaging-site"


def line_asset_model() -> dict:
    return {
        "assetModelName": "edge-app packaging line",
        "assetModelExternalId": LINE_MODEL_EXTERNAL_ID,
        "assetModelDescription": "One packaging line watched by edge-app: tray counts, bins, fps, anomaly score",
        "assetModelProperties": [
            {"name": m.name, "externalId": f"line-{m.name}", "dataType": m.data_type, "unit": m.unit,
             "type": {"measurement": {}}}
            for m in MEASUREMENTS
        ] + [{"name": "line_id", "externalId": "line-line_id", "dataType": "STRING",
              "type": {"attribute": {"defaultValue": "unset"}}}],
    }


def site_asset_model() -> dict:
    return {
        "assetModelName": "edge-app packaging site",
        "assetModelExternalId": SITE_MODEL_EXTERNAL_ID,
        "assetModelDescription": "A plant (site) with its packaging lines as child assets",
        "assetModelProperties": [{"name": "site_id", "externalId": "site-site_id", "dataType": "STRING",
                                  "type": {"attribute": {"defaultValue": "unset"}}}],
        "assetModelHierarchies": [{"name": "lines", "externalId": "site-lines",
                                   "childAssetModelId": f"externalId:{LINE_MODEL_EXTERNAL_ID}"}],
    }


def alias_table(site: str, lines: list[str], template: str = DEFAULT_ALIAS_TEMPLATE) -> list[dict]:
    """Which alias to set on which property of which line asset."""
    return [{"line": line, "property": m.name, "propertyAlias": property_alias(site, line, m.name, template)}
            for line in lines for m in MEASUREMENTS]
