"""The route table type and the OpenAPI 3.1 document generated from it.

Routes are registered from the same list of RouteSpec the document is built from, so an
endpoint cannot exist without being documented (and the tests check both directions).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from tollway.http.admin_schemas import ErrorOut

SCHEMA_REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
REQUEST_ID_HEADER_REF = "#/components/headers/X-Request-Id"
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class PathParam:
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str  # "GET", "POST", ...
    path: str  # aiohttp pattern under the API root, e.g. "/prices/{model:.+}"
    handler: Callable[..., Awaitable[Any]]
    summary: str
    tag: str
    body: type[BaseModel] | None = None  # validated JSON request body
    query: type[BaseModel] | None = None  # validated query string
    response: type[BaseModel] | None = None  # one item of the success body
    many: bool = False  # success body is {"data": [response, ...]}
    status: int = 200
    auth: bool = True

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def path_param_names(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


def openapi_path(prefix: str, pattern: str) -> str:
    """aiohttp's "/prices/{model:.+}" -> OpenAPI's "/api/prices/{model}"."""
    return prefix + _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", pattern)


def build_document(
    routes: Sequence[RouteSpec],
    *,
    prefix: str,
    title: str,
    version: str,
    description: str,
    path_params: Mapping[str, PathParam],
) -> dict[str, Any]:
    schemas, refs = _component_schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        operation = _operation(spec, refs, path_params)
        paths.setdefault(openapi_path(prefix, spec.path), {})[spec.method.lower()] = operation
    tags = list(dict.fromkeys(spec.tag for spec in routes))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": [{"name": t} for t in tags],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin token (tw-admin-…). API keys (sk-…) are refused here.",
                }
            },
            "headers": {
                "X-Request-Id": {
                    "description": "Identifies the request in the server log; quote it when asking for help.",
                    "schema": {"type": "string", "pattern": "^req_[0-9a-f]{24}$"},
                }
            },
            "responses": {
                "Error": {
                    "description": "Error; `code` is stable, `message` follows Accept-Language (en, zh).",
                    "headers": {"X-Request-Id": {"$ref": REQUEST_ID_HEADER_REF}},
                    "content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(model="ErrorOut")}}},
                }
            },
        },
    }


def _component_schemas(
    routes: Sequence[RouteSpec],
) -> tuple[dict[str, Any], dict[type[BaseModel], dict[str, Any]]]:
    """Every body and response model's JSON schema, generated together so shared sub-models
    get one name under components/schemas."""
    wanted: dict[type[BaseModel], JsonSchemaMode] = {ErrorOut: "serialization"}
    for spec in routes:
        if spec.body is not None:
            wanted[spec.body] = "validation"
        if spec.response is not None:
            wanted[spec.response] = "serialization"
    key_map, top = models_json_schema(list(wanted.items()), ref_template=SCHEMA_REF)
    refs = {model: key_map[(model, mode)] for model, mode in wanted.items()}
    schemas = dict(top.get("$defs", {}))
    for spec in routes:
        if spec.query is not None:
            # Query models are spread into parameters, but any sub-schema they use is shared.
            schemas.update(spec.query.model_json_schema(ref_template=SCHEMA_REF).get("$defs", {}))
    return schemas, refs


def _operation(
    spec: RouteSpec, refs: Mapping[type[BaseModel], dict[str, Any]], path_params: Mapping[str, PathParam]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name in spec.path_param_names():
        if name not in path_params:
            raise ValueError(f"path parameter `{name}` of {spec.method} {spec.path} has no PathParam description")
        param = path_params[name]
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": param.description,
                "schema": dict(param.schema),
            }
        )
    if spec.query is not None:
        parameters.extend(_query_parameters(spec.query))

    operation: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "tags": [spec.tag],
    }
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    operation["responses"] = _responses(spec, refs)
    if not spec.auth:
        operation["security"] = []
    return operation


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _responses(spec: RouteSpec, refs: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    error = {"$ref": "#/components/responses/Error"}
    headers = {"X-Request-Id": {"$ref": REQUEST_ID_HEADER_REF}}
    responses: dict[str, Any] = {}
    if spec.status == 204:
        responses["204"] = {"description": "Done; no body.", "headers": headers}
    else:
        item: dict[str, Any] = refs[spec.response] if spec.response is not None else {"type": "object"}
        schema = (
            {"type": "object", "properties": {"data": {"type": "array", "items": item}}, "required": ["data"]}
            if spec.many
            else item
        )
        responses[str(spec.status)] = {
            "description": "Success.",
            "headers": headers,
            "content": {"application/json": {"schema": schema}},
        }
    if spec.auth:
        responses["401"] = error
    responses["default"] = error
    return responses
