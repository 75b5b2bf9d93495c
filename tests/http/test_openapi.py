"""The OpenAPI document: served without auth, and complete and self-consistent with the routes
actually registered (openapi-spec-validator is not available, so structure is checked here)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import Engine

from tests.http.test_admin_api import admin_server
from tollway.accounts.credentials import CredentialBox
from tollway.http.admin_api import ROUTES, openapi, setup_admin_api
from tollway.http.openapi import PathParam, RouteSpec, build_document

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi()


def registered_routes(engine: Engine, box: CredentialBox) -> set[tuple[str, str]]:
    """(method, OpenAPI-style path) for every route the admin API really adds to an app."""
    app = web.Application()
    setup_admin_api(app, engine, box)
    found: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        sub = info.get("app")
        if sub is None:
            continue
        for route in sub.router.routes():
            # Mounting a sub-app prefixes its resources, so canonical is the full path.
            assert route.resource.canonical.startswith(info["prefix"] + "/")
            found.add((route.method.lower(), route.resource.canonical))
    return found


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in all_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in all_refs(value)]
    return []


async def test_document_is_served_without_auth(sqlite_engine: Engine, credential_box: CredentialBox) -> None:
    async with admin_server(sqlite_engine, credential_box) as api:
        reply = await api.call("GET", "/api/openapi.json", token=None)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["X-Request-Id"].startswith("req_")
    served = reply.json
    assert served["openapi"] == "3.1.0"
    assert served == openapi()


def test_every_registered_route_is_documented_and_nothing_else(
    sqlite_engine: Engine, credential_box: CredentialBox, document: dict[str, Any]
) -> None:
    registered = registered_routes(sqlite_engine, credential_box)
    documented = {(method, path) for method, path, _ in operations(document)}
    assert registered == documented
    expected = {
        ("get", "/api/health"),
        ("get", "/api/openapi.json"),
        ("get", "/api/users"),
        ("post", "/api/users"),
        ("get", "/api/users/{name}"),
        ("patch", "/api/users/{name}"),
        ("post", "/api/users/{name}/balance"),
        ("get", "/api/users/{name}/ledger"),
        ("get", "/api/groups"),
        ("post", "/api/groups"),
        ("get", "/api/groups/{name}"),
        ("patch", "/api/groups/{name}"),
        ("delete", "/api/groups/{name}"),
        ("get", "/api/keys"),
        ("post", "/api/keys"),
        ("get", "/api/keys/{key_id}"),
        ("patch", "/api/keys/{key_id}"),
        ("delete", "/api/keys/{key_id}"),
        ("get", "/api/channels"),
        ("post", "/api/channels"),
        ("get", "/api/channels/{name}"),
        ("patch", "/api/channels/{name}"),
        ("delete", "/api/channels/{name}"),
        ("get", "/api/prices"),
        ("put", "/api/prices/{model}"),
        ("get", "/api/prices/{model}"),
        ("delete", "/api/prices/{model}"),
        ("get", "/api/logs"),
        ("get", "/api/logs/{request_id}"),
    }
    assert documented == expected


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = all_refs(document)
    assert len(refs) > 30
    for ref in refs:
        resolve(document, ref)
    # Pydantic's local "$defs" must have been rewritten to components, never left dangling.
    assert not any("$defs" in ref for ref in refs)


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        in_path = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        assert set(declared) == in_path, (method, path)
        for param in declared.values():
            assert param["required"] is True and "type" in param["schema"]
        query_names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        assert len(query_names) == len(set(query_names)), (method, path)


def test_operations_are_complete(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    for method, path, op in operations(document):
        assert op["summary"] and op["tags"]
        responses = op["responses"]
        success = [code for code in responses if code.startswith("2")]
        expected = {"post": "201", "delete": "204"}.get(method, "200")
        assert success == [expected], (method, path)
        assert resolve(document, responses["default"]["$ref"])["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }
        if method in ("post", "put", "patch"):
            body_schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert resolve(document, body_schema["$ref"])["type"] == "object"
        else:
            assert "requestBody" not in op
        if expected != "204":
            assert "application/json" in responses[expected]["content"]


def test_security_is_bearer_except_health_and_the_document(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearerAuth": []}]
    open_ops = {path for _, path, op in operations(document) if op.get("security") == []}
    assert open_ops == {"/api/health", "/api/openapi.json"}
    for _, path, op in operations(document):
        if path not in open_ops:
            assert "401" in op["responses"]


def test_schemas_describe_the_api(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    error = resolve(document, "#/components/schemas/ErrorOut")
    detail = resolve(document, error["properties"]["error"]["$ref"])
    assert set(detail["properties"]) == {"message", "type", "param", "code", "request_id"}

    # Write-only credential: accepted on input, absent from every output.
    assert schemas["ChannelCreate"]["properties"]["credential"]["writeOnly"] is True
    assert "credential" not in schemas["ChannelOut"]["properties"]
    assert "key" in schemas["KeyCreatedOut"]["properties"] and "key" not in schemas["KeyOut"]["properties"]

    # PATCH: null is documented only where it clears something.
    key_patch = schemas["KeyPatch"]["properties"]
    assert {"type": "null"} in key_patch["spend_limit_usd"]["anyOf"]
    assert key_patch["name"]["type"] == "string" and "anyOf" not in key_patch["name"]
    assert "required" not in schemas["KeyPatch"]
    assert schemas["UserCreate"]["required"] == ["name"]

    logs = next(op for m, p, op in operations(document) if (m, p) == ("get", "/api/logs"))
    query = {p["name"]: p for p in logs["parameters"]}
    assert set(query) == {"since", "until", "user", "key_id", "model", "status", "request_id", "limit", "offset"}
    assert query["limit"]["schema"]["maximum"] == 1000 and query["limit"]["required"] is False
    listing = logs["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["properties"]["data"]["items"] == {"$ref": "#/components/schemas/LogOut"}


def test_a_path_parameter_without_a_description_is_refused() -> None:
    async def handler(call: Any) -> None:
        return None

    spec = RouteSpec("GET", "/things/{thing_id}", handler, "A thing", "things")
    with pytest.raises(ValueError, match="thing_id"):
        build_document([spec], prefix="/api", title="t", version="0", description="", path_params={})
    doc = build_document(
        [spec],
        prefix="/api",
        title="t",
        version="0",
        description="",
        path_params={"thing_id": PathParam("id", {"type": "integer"})},
    )
    assert doc["paths"]["/api/things/{thing_id}"]["get"]["parameters"][0]["schema"] == {"type": "integer"}


def test_route_table_uses_each_handler_once() -> None:
    assert len({spec.handler for spec in ROUTES}) == len(ROUTES)
