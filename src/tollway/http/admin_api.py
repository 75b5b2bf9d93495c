"""The admin REST API under /api/: thin routes over the admin services, bearer-token auth,
one error shape, and an OpenAPI document generated from the same route table.

Mounted as an aiohttp sub-application so its middleware (request ids, errors, JSON 404s)
applies to /api/ only and never to the relay's /v1/ routes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine

from tollway import __version__
from tollway.accounts.credentials import CredentialBox
from tollway.accounts.keys import KEY_PREFIX
from tollway.admin import channels, groups, keys, prices, tokens, users
from tollway.http import admin_schemas as s
from tollway.http.errors import (
    REQUEST_ID_HEADER,
    body_too_large_error,
    error_response,
    internal_error,
    method_not_allowed_error,
    new_request_id,
    path_not_found_error,
    validation_error,
)
from tollway.http.openapi import PathParam, RouteSpec, build_document
from tollway.logs import query as log_query
from tollway.pipeline.errors import (
    ADMIN_UNAUTHORIZED,
    BAD_REQUEST,
    GatewayError,
    body_not_object_error,
    invalid_json_error,
)

log = logging.getLogger("tollway.admin")

API_PREFIX = "/api"
# The id the middleware gave this request, for anything running inside the admin API.
REQUEST_ID_KEY = web.RequestKey("tollway_admin_request_id", str)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AdminContext:
    engine: Engine
    box: CredentialBox
    extra_admin_token: str


@dataclass(frozen=True, slots=True)
class AdminCall:
    """What a route handler gets: the store, the raw request, and its validated inputs."""

    ctx: AdminContext
    request: web.Request
    body: Any
    query: Any

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    def key_id(self) -> int:
        text = self.path("key_id")
        if not text.isdigit():
            raise GatewayError(
                BAD_REQUEST,
                f"key id `{text}` is not a number; key ids are the numbers `GET /api/keys` lists",
                f"密钥 ID `{text}` 不是数字；密钥 ID 是 `GET /api/keys` 列出的数字",
                param="key_id",
            )
        return int(text)


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    # Services are synchronous SQLAlchemy; keep them off the event loop.
    return await asyncio.to_thread(fn, *args, **kwargs)


# --- handlers: each one line of plumbing into a service ----------------------------------------


async def health(call: AdminCall) -> dict[str, str]:
    return {"status": "ok"}


async def openapi_document(call: AdminCall) -> Any:
    return None  # served pre-rendered by setup_admin_api; listed here so it is documented


async def list_users(call: AdminCall) -> Any:
    return await _run(users.list_users, call.engine)


async def create_user(call: AdminCall) -> Any:
    body: s.UserCreate = call.body
    return await _run(users.create_user, call.engine, body.name, **s.sent_fields(body, exclude=("name",)))


async def get_user(call: AdminCall) -> Any:
    return await _run(users.get_user, call.engine, call.path("name"))


async def update_user(call: AdminCall) -> Any:
    return await _run(users.update_user, call.engine, call.path("name"), **call.body.changes())


async def adjust_balance(call: AdminCall) -> Any:
    body: s.BalanceAdjust = call.body
    return await _run(users.adjust_balance, call.engine, call.path("name"), body.delta_usd, note=body.note)


async def list_ledger(call: AdminCall) -> Any:
    return await _run(users.list_ledger, call.engine, call.path("name"), limit=call.query.limit)


async def list_groups(call: AdminCall) -> Any:
    return await _run(groups.list_groups, call.engine)


async def create_group(call: AdminCall) -> Any:
    body: s.GroupCreate = call.body
    return await _run(groups.create_group, call.engine, body.name, **s.sent_fields(body, exclude=("name",)))


async def get_group(call: AdminCall) -> Any:
    return await _run(groups.get_group, call.engine, call.path("name"))


async def update_group(call: AdminCall) -> Any:
    return await _run(groups.update_group, call.engine, call.path("name"), **call.body.changes())


async def delete_group(call: AdminCall) -> None:
    await _run(groups.delete_group, call.engine, call.path("name"))


async def list_keys(call: AdminCall) -> Any:
    return await _run(keys.list_keys, call.engine, user=call.query.user)


async def create_key(call: AdminCall) -> Any:
    body: s.KeyCreate = call.body
    return await _run(keys.create_key, call.engine, body.user, **s.sent_fields(body, exclude=("user",)))


async def get_key(call: AdminCall) -> Any:
    return await _run(keys.get_key, call.engine, call.key_id())


async def update_key(call: AdminCall) -> Any:
    return await _run(keys.update_key, call.engine, call.key_id(), **call.body.changes())


async def delete_key(call: AdminCall) -> None:
    await _run(keys.delete_key, call.engine, call.key_id())


async def list_channels(call: AdminCall) -> Any:
    return await _run(channels.list_channels, call.engine)


async def create_channel(call: AdminCall) -> Any:
    body: s.ChannelCreate = call.body
    fields = s.sent_fields(body, exclude=("name",))
    return await _run(channels.create_channel, call.engine, call.ctx.box, body.name, **fields)


async def get_channel(call: AdminCall) -> Any:
    return await _run(channels.get_channel, call.engine, call.path("name"))


async def update_channel(call: AdminCall) -> Any:
    changes = call.body.changes()
    return await _run(channels.update_channel, call.engine, call.ctx.box, call.path("name"), **changes)


async def delete_channel(call: AdminCall) -> None:
    await _run(channels.delete_channel, call.engine, call.path("name"))


async def list_prices(call: AdminCall) -> Any:
    return await _run(prices.list_prices, call.engine)


async def set_price(call: AdminCall) -> Any:
    return await _run(prices.set_price, call.engine, call.path("model"), **s.sent_fields(call.body))


async def get_price(call: AdminCall) -> Any:
    return await _run(prices.get_price, call.engine, call.path("model"))


async def delete_price(call: AdminCall) -> None:
    await _run(prices.delete_price, call.engine, call.path("model"))


async def list_logs(call: AdminCall) -> Any:
    q: s.LogQuery = call.query
    flt = log_query.LogFilter(
        start_ms=log_query.parse_time(q.since, param="since") if q.since else None,
        end_ms=log_query.parse_time(q.until, param="until") if q.until else None,
        user=q.user,
        key_id=q.key_id,
        model=q.model,
        status=q.status,
        request_id=q.request_id,
        limit=q.limit,
        offset=q.offset,
    )
    return await _run(log_query.query_logs, call.engine, flt)


async def get_log(call: AdminCall) -> Any:
    return await _run(log_query.get_log, call.engine, call.path("request_id"))


# --- the route table: registration and the OpenAPI document both come from it ------------------

R = RouteSpec
ROUTES: tuple[RouteSpec, ...] = (
    R("GET", "/health", health, "Liveness check", "meta", response=s.HealthOut, auth=False),
    R("GET", "/openapi.json", openapi_document, "This OpenAPI document", "meta", auth=False),
    R("GET", "/users", list_users, "List users", "users", response=s.UserOut, many=True),
    R("POST", "/users", create_user, "Create a user", "users", body=s.UserCreate, response=s.UserOut, status=201),
    R("GET", "/users/{name}", get_user, "Show a user", "users", response=s.UserOut),
    R("PATCH", "/users/{name}", update_user, "Change a user", "users", body=s.UserPatch, response=s.UserOut),
    R(
        "POST",
        "/users/{name}/balance",
        adjust_balance,
        "Top up (positive) or deduct (negative) a user's balance",
        "users",
        body=s.BalanceAdjust,
        response=s.UserOut,
        status=201,
    ),
    R(
        "GET",
        "/users/{name}/ledger",
        list_ledger,
        "A user's ledger, newest first",
        "users",
        query=s.LedgerQuery,
        response=s.LedgerEntryOut,
        many=True,
    ),
    R("GET", "/groups", list_groups, "List groups", "groups", response=s.GroupOut, many=True),
    R("POST", "/groups", create_group, "Create a group", "groups", body=s.GroupCreate, response=s.GroupOut, status=201),
    R("GET", "/groups/{name}", get_group, "Show a group", "groups", response=s.GroupOut),
    R("PATCH", "/groups/{name}", update_group, "Change a group", "groups", body=s.GroupPatch, response=s.GroupOut),
    R("DELETE", "/groups/{name}", delete_group, "Delete an empty group", "groups", status=204),
    R("GET", "/keys", list_keys, "List API keys", "keys", query=s.KeyListQuery, response=s.KeyOut, many=True),
    R(
        "POST",
        "/keys",
        create_key,
        "Create an API key (the full key is returned only here, once)",
        "keys",
        body=s.KeyCreate,
        response=s.KeyCreatedOut,
        status=201,
    ),
    R("GET", "/keys/{key_id}", get_key, "Show an API key (masked)", "keys", response=s.KeyOut),
    R("PATCH", "/keys/{key_id}", update_key, "Change an API key", "keys", body=s.KeyPatch, response=s.KeyOut),
    R("DELETE", "/keys/{key_id}", delete_key, "Delete an API key", "keys", status=204),
    R("GET", "/channels", list_channels, "List channels", "channels", response=s.ChannelOut, many=True),
    R(
        "POST",
        "/channels",
        create_channel,
        "Create a channel",
        "channels",
        body=s.ChannelCreate,
        response=s.ChannelOut,
        status=201,
    ),
    R("GET", "/channels/{name}", get_channel, "Show a channel", "channels", response=s.ChannelOut),
    R(
        "PATCH",
        "/channels/{name}",
        update_channel,
        "Change a channel",
        "channels",
        body=s.ChannelPatch,
        response=s.ChannelOut,
    ),
    R("DELETE", "/channels/{name}", delete_channel, "Delete a channel", "channels", status=204),
    R("GET", "/prices", list_prices, "List model prices", "prices", response=s.PriceOut, many=True),
    R("PUT", "/prices/{model:.+}", set_price, "Set a model's price", "prices", body=s.PriceSet, response=s.PriceOut),
    R("GET", "/prices/{model:.+}", get_price, "Show a model's price", "prices", response=s.PriceOut),
    R("DELETE", "/prices/{model:.+}", delete_price, "Remove a model's price", "prices", status=204),
    R(
        "GET",
        "/logs",
        list_logs,
        "Query request logs, newest first",
        "logs",
        query=s.LogQuery,
        response=s.LogOut,
        many=True,
    ),
    R("GET", "/logs/{request_id}", get_log, "Show one request log", "logs", response=s.LogOut),
)

PATH_PARAMS: dict[str, PathParam] = {
    "name": PathParam("name of the user, group or channel", {"type": "string"}),
    "key_id": PathParam("numeric key id", {"type": "integer", "minimum": 1}),
    "model": PathParam('model name; may contain "/", e.g. meta/llama-3', {"type": "string"}),
    "request_id": PathParam("request id, as in the X-Request-Id response header", {"type": "string"}),
}


def openapi(prefix: str = API_PREFIX) -> dict[str, Any]:
    return build_document(
        ROUTES,
        prefix=prefix,
        title="Tollway admin API",
        version=__version__,
        description=(
            "Users, groups, API keys, channels, prices and request logs. Money is exact: amounts "
            'are decimal strings in US dollars ("*_usd") alongside integer nano-USD ("*_nano").'
        ),
        path_params=PATH_PARAMS,
    )


# --- auth ----------------------------------------------------------------------------------------


def _unauthorized(message_en: str, message_zh: str) -> GatewayError:
    return GatewayError(ADMIN_UNAUTHORIZED, message_en, message_zh, param="Authorization")


async def _authenticate(request: web.Request, ctx: AdminContext) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(
            "admin endpoints need `Authorization: Bearer <admin token>`; create one with `tollway admin-token create`",
            "管理接口需要 `Authorization: Bearer <管理令牌>`；可用 `tollway admin-token create` 创建",
        )
    if ctx.extra_admin_token and hmac.compare_digest(token.encode(), ctx.extra_admin_token.encode()):
        return
    if await _run(tokens.verify_admin_token, ctx.engine, token):
        return
    if token.startswith(KEY_PREFIX):
        raise _unauthorized(
            "admin endpoints need an admin token, not an API key; API keys are for /v1 requests. "
            "Create an admin token with `tollway admin-token create`",
            "管理接口需要管理令牌，而不是 API 密钥（API 密钥用于 /v1 请求）。"
            "请用 `tollway admin-token create` 创建管理令牌",
        )
    # Never echo the token: it may be a real secret pasted into the wrong place.
    raise _unauthorized(
        "admin token is not valid; create a new one with `tollway admin-token create`",
        "管理令牌无效；请用 `tollway admin-token create` 创建新的令牌",
    )


# --- request/response plumbing -------------------------------------------------------------------


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    data: Any = {}
    if raw.strip():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise invalid_json_error() from None
    if not isinstance(data, dict):
        raise body_not_object_error()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, where="body") from None


def _read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    # "?user=" means no filter, as a form with an empty box would send it.
    data = {k: v for k, v in request.query.items() if v != ""}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, where="query") from None


def _json(payload: Any, status: int) -> web.Response:
    # OPT_NON_STR_KEYS: rows turned into dicts can carry str subclasses (SQLAlchemy's
    # quoted_name) as keys, which plain orjson refuses.
    body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type="application/json")


def _endpoint(spec: RouteSpec, ctx: AdminContext) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        if spec.auth:
            await _authenticate(request, ctx)
        body = await _read_body(request, spec.body) if spec.body is not None else None
        query = _read_query(request, spec.query) if spec.query is not None else None
        result = await spec.handler(AdminCall(ctx, request, body, query))
        if spec.status == 204:
            return web.Response(status=204)
        return _json({"data": result} if spec.many else result, spec.status)

    handle.__name__ = spec.operation_id
    return handle


def _accept_language(request: web.Request) -> str | None:
    return request.headers.get("Accept-Language")


@web.middleware
async def _admin_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID_KEY] = request_id
    err: GatewayError | None = None
    try:
        response: web.StreamResponse = await handler(request)
    except GatewayError as exc:
        err = exc
    except web.HTTPMethodNotAllowed as exc:
        err = method_not_allowed_error(request.method, request.path, exc.allowed_methods)
    except web.HTTPNotFound:
        err = path_not_found_error(request.path)
    except web.HTTPRequestEntityTooLarge:
        err = body_too_large_error()
    except web.HTTPException as exc:
        if exc.status >= 500:
            log.error(
                "admin request %s %s failed with HTTP %s [%s]", request.method, request.path, exc.status, request_id
            )
            err = internal_error()
        else:
            err = GatewayError(BAD_REQUEST, exc.reason, exc.reason)
    except Exception:
        # The traceback goes to the server log only; the caller gets the request id to quote.
        log.exception("admin request %s %s failed [%s]", request.method, request.path, request_id)
        err = internal_error()
    if err is not None:
        response = error_response(err, request_id=request_id, accept_language=_accept_language(request))
        if err.kind is ADMIN_UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="tollway-admin"'
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def setup_admin_api(app: web.Application, engine: Engine, box: CredentialBox, *, extra_admin_token: str = "") -> None:
    """Mount every /api/ route on `app`. Call before the app starts."""
    ctx = AdminContext(engine=engine, box=box, extra_admin_token=extra_admin_token)
    api = web.Application(middlewares=[_admin_middleware])
    document = orjson.dumps(openapi())

    async def serve_openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    for spec in ROUTES:
        handler = serve_openapi if spec.handler is openapi_document else _endpoint(spec, ctx)
        api.router.add_route(spec.method, spec.path, handler, name=spec.operation_id)
    app.add_subapp(API_PREFIX, api)
