"""The OpenAPI document the service publishes at ``/docs.json``: what it really enforces.

BentoML generates the document from the request and response schemas
(:mod:`gridcast.wire`, whose bounds come from the settings). This module completes it
with what only the running service knows, so a client generated from it is right:

* every error answer of each route, with its body (``ErrorBody``: ``{error, detail,
  field}``) and, for 503, the ``Retry-After`` header — in place of BentoML's generic
  error entries, whose bodies this service never sends;
* ``region`` and ``model`` as enums of what this deployment serves (a region it does not
  serve is a 404, so the schema says which ones it does);
* the semantic checks no JSON Schema can state (timestamps strictly increasing on the
  model's grid, weather after the last observation), in the operation's description,
  answered by 422.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from gridcast.catalog import ModelCatalog
from gridcast.wire import ErrorBody

REF = "#/components/schemas/ErrorBody"

#: status → what it means, for every route that can answer it
ERRORS: dict[str, str] = {
    "400": "The body does not validate against this schema (`error`: `invalid_request`; `field` names the first "
           "bad field).",
    "401": "An admin route without the right `x-api-key` (only when the deployment sets an API key).",
    "404": "The region is not served, or the model is not served for it (`model_not_found`).",
    "413": "The body is larger than the deployment's `max_body_bytes` (`payload_too_large`).",
    "415": "The body is not JSON (`unsupported_media_type`); pickles are refused.",
    "422": "Valid JSON that cannot be answered: history or weather off the model's grid, not strictly increasing, "
           "with a gap, or weather not after the last observation (`invalid_input`); less than one day of "
           "history for any model (`insufficient_data`).",
    "500": "An unexpected failure (`internal_error`); details stay in the server log.",
    "503": "Overloaded (more model calls waiting than `max_queue_calls`: `model_unavailable`) or a backing store "
           "down (`state_unavailable`); retry after `Retry-After` seconds.",
}

#: route → (method, the error statuses it can answer)
ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "/forecast": ("post", ("400", "404", "413", "415", "422", "500", "503")),
    "/forecast_batch": ("post", ("400", "404", "413", "415", "422", "500", "503")),
    "/recent": ("post", ("400", "404", "413", "415", "500", "503")),
    "/admin/observations": ("post", ("400", "401", "404", "413", "415", "422", "500")),
    "/models": ("get", ("500",)),
}

SEMANTIC = ("Beyond the schema: `history` and `weather` timestamps must be strictly increasing on the model's "
            "step grid without gaps, and `weather` must start after the last observation (422 otherwise).")


def _error(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": ERRORS[status],
                                "content": {"application/json": {"schema": {"$ref": REF}}}}
    if status == "503":
        response["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                               "schema": {"type": "integer", "minimum": 1}}}
    return response


def _set_enum(schema: dict[str, Any], name: str, values: Iterable[str]) -> None:
    prop = schema.get("properties", {}).get(name)
    if prop is not None:
        prop.pop("pattern", None)
        prop.pop("minLength", None)
        prop.pop("maxLength", None)
        prop["enum"] = sorted(values)


def _nullable(node: Any) -> None:
    """Optional fields (``X | None = None``) reach OpenAPI 3.0 as plain ``X`` with a null default:
    mark them ``nullable``, as the service sends and accepts ``null`` there."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None and "type" in node:
            node["nullable"] = True
        for value in node.values():
            _nullable(value)
    elif isinstance(node, list):
        for value in node:
            _nullable(value)


def complete(spec: dict[str, Any], catalog: ModelCatalog) -> dict[str, Any]:
    """BentoML's generated document, completed (a new dict; ``spec`` is not changed)."""
    doc = copy.deepcopy(spec)
    _nullable(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    for generic in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(generic, None)
    regions = catalog.regions()
    aliases = sorted({m.alias for m in catalog} | {"best"})
    for name in ("ForecastQuery", "ForecastQueryIODescriptor", "RecentQueryIODescriptor"):
        if name in schemas and regions:
            _set_enum(schemas[name], "region", regions)
    for name in ("ForecastQuery", "ForecastQueryIODescriptor"):
        if name in schemas:
            _set_enum(schemas[name], "model", aliases)
    for path, (method, statuses) in ROUTES.items():
        operation = doc.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        body = operation.get("requestBody")
        if body is not None:
            body["required"] = True  # no body is a 415/400, never an answer
            schema = body.get("content", {}).get("application/json", {}).get("schema", {})
            if regions:
                _set_enum(schema, "region", regions)
            _set_enum(schema, "model", aliases) if "model" in schema.get("properties", {}) else None
        responses = operation.get("responses", {})
        ok = responses.get("200", responses.get(200))
        operation["responses"] = {"200": ok, **{s: _error(s) for s in statuses}} if ok else \
            {s: _error(s) for s in statuses}
        if path in ("/forecast", "/forecast_batch", "/admin/observations"):
            operation["description"] = (operation.get("description", "") + "\n\n" + SEMANTIC).strip()
    return doc
