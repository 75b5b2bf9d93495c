"""Pydantic models for the admin REST API: request bodies and query strings (validated), and
response shapes (documentation only; the services' dicts are returned as they are).

Request models check JSON types and field names only. Every rule about values (names, money
precision, known groups, URL shapes) lives in the admin services, so the CLI, the API and the
console all refuse the same things with the same words. Field defaults mirror the services'
defaults for the OpenAPI document, but handlers pass only the fields a caller actually sent.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from sqlalchemy import Boolean, Integer, String, Text

from tollway.store.tables import request_logs

# --- field types ------------------------------------------------------------------------------


def _money_input(value: Any) -> Any:
    # Floats are refused rather than guessed at: 0.1 as a double is not 0.1, and money is exact.
    if isinstance(value, float):
        raise PydanticCustomError("money_as_string", "must be a decimal string")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


UsdAmount = Annotated[
    str,
    BeforeValidator(_money_input),
    Field(description='US dollars as a decimal string, at most 9 decimals, e.g. "5" or "0.25"', examples=["5"]),
]


def _status_filter(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("error", "ok"):
            return text
        if text.isdigit():
            return int(text)
    raise PydanticCustomError("status_filter", "must be a status code, error or ok")


StatusFilter = Annotated[
    int | str,
    PlainValidator(_status_filter),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string", "enum": ["error", "ok"]}],
            "description": 'an HTTP status code, "error" (>= 400) or "ok" (< 400)',
        }
    ),
]

ModelList = Annotated[list[str], Field(description="model names")]


class Body(BaseModel):
    # Unknown fields are refused so a typo ("spend_limit" for "spend_limit_usd") is not
    # silently ignored.
    model_config = ConfigDict(extra="forbid")


class PatchBody(Body):
    """A partial update: absent fields stay as they are; an explicit null clears a field, but
    only the fields listed in `nullable` can be cleared."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise PydanticCustomError("null_not_allowed", "must not be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Fields are typed `X | None` only so "absent" can be told apart; the document should
        # say null is accepted only where it really is.
        schema = handler.resolve_ref_schema(handler(core_schema))
        for name, prop in schema.get("properties", {}).items():
            if name in cls.nullable:
                continue
            prop.pop("default", None)
            branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
            if len(branches) == 1:
                prop.update(branches[0])
            elif branches:
                prop["anyOf"] = branches
        return schema

    def changes(self) -> dict[str, Any]:
        """The keyword arguments for the service's update function: only what was sent."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def sent_fields(model: BaseModel, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Create-style bodies: pass only what the caller sent, so the service's defaults rule."""
    return {k: getattr(model, k) for k in model.model_fields_set if k not in exclude}


# --- request bodies ---------------------------------------------------------------------------


class UserCreate(Body):
    name: str
    group: str = "default"
    balance_usd: UsdAmount = "0"
    role: Literal["user", "admin"] = "user"
    email: str | None = None


class UserPatch(PatchBody):
    nullable = frozenset({"email"})

    status: Literal["active", "disabled"] | None = None
    group: str | None = None
    role: Literal["user", "admin"] | None = None
    email: Annotated[str | None, Field(description='null or "" removes it')] = None

    def changes(self) -> dict[str, Any]:
        # The service reads None as "unchanged" and "" as "clear".
        out = super().changes()
        if "email" in out and out["email"] is None:
            out["email"] = ""
        return out


class BalanceAdjust(Body):
    delta_usd: Annotated[UsdAmount, Field(description='signed: "5" adds, "-1.5" deducts')]
    note: str = ""


class GroupCreate(Body):
    name: str
    price_multiplier: Annotated[str, Field(description='applied to model prices, e.g. "0.85"')] = "1"
    allowed_models: Annotated[list[str] | None, Field(description="null: every priced model")] = None
    description: str = ""


class GroupPatch(PatchBody):
    nullable = frozenset({"allowed_models"})

    price_multiplier: str | None = None
    allowed_models: Annotated[list[str] | None, Field(description="null: every priced model")] = None
    description: str | None = None


class KeyCreate(Body):
    user: Annotated[str, Field(description="name of the user who owns the key")]
    name: str = "default"
    spend_limit_usd: Annotated[UsdAmount | None, Field(description="null: unlimited")] = None
    expires_at: Annotated[
        str | None, Field(description='ISO-8601 date/datetime (naive = UTC) or relative "30d", "12h"; null: never')
    ] = None
    allowed_models: Annotated[list[str] | None, Field(description="null: whatever the group allows")] = None
    allowed_ips: Annotated[list[str] | None, Field(description="IPs or CIDRs; null: any")] = None
    environment: Literal["test", "prod"] = "prod"
    project: str | None = None


class KeyPatch(PatchBody):
    nullable = frozenset({"spend_limit_usd", "expires_at", "allowed_models", "allowed_ips", "project"})

    name: str | None = None
    status: Literal["active", "disabled"] | None = None
    spend_limit_usd: Annotated[UsdAmount | None, Field(description="null: unlimited")] = None
    expires_at: Annotated[str | None, Field(description="null: never expires")] = None
    allowed_models: Annotated[list[str] | None, Field(description="null: whatever the group allows")] = None
    allowed_ips: Annotated[list[str] | None, Field(description="null: any")] = None
    environment: Literal["test", "prod"] | None = None
    project: str | None = None


class ChannelCreate(Body):
    name: str
    type: Annotated[str, Field(description='channel type, e.g. "openai" or "demo"')]
    base_url: Annotated[str, Field(description='OpenAI-style base including the version, e.g. ".../v1"')] = ""
    credential: Annotated[
        str | None,
        Field(description="upstream API key; write-only, stored encrypted", json_schema_extra={"writeOnly": True}),
    ] = None
    models: ModelList
    model_mapping: Annotated[dict[str, str] | None, Field(description="requested name -> upstream name")] = None
    groups: Annotated[list[str] | None, Field(description='groups that may use it; default ["default"]')] = None
    priority: int = 0
    weight: Annotated[int, Field(ge=1)] = 1
    status: Literal["enabled", "disabled"] = "enabled"


class ChannelPatch(PatchBody):
    nullable = frozenset({"credential"})

    base_url: str | None = None
    credential: Annotated[
        str | None, Field(description="write-only; null removes it", json_schema_extra={"writeOnly": True})
    ] = None
    models: list[str] | None = None
    model_mapping: dict[str, str] | None = None
    groups: list[str] | None = None
    priority: int | None = None
    weight: Annotated[int | None, Field(ge=1)] = None
    status: Literal["enabled", "disabled"] | None = None


class PriceSet(Body):
    input_usd_per_mtok: Annotated[UsdAmount, Field(description="USD per 1M input tokens")] = "0"
    output_usd_per_mtok: Annotated[UsdAmount, Field(description="USD per 1M output tokens")] = "0"
    cached_input_usd_per_mtok: Annotated[UsdAmount | None, Field(description="null: same as input")] = None
    per_request_usd: Annotated[UsdAmount | None, Field(description="flat price per request")] = None


# --- query strings ----------------------------------------------------------------------------


class KeyListQuery(Body):
    user: Annotated[str | None, Field(description="only this user's keys")] = None


class LedgerQuery(Body):
    limit: Annotated[int, Field(ge=1, le=1000)] = 50


class LogQuery(Body):
    since: Annotated[str | None, Field(description='ISO-8601 or "15m", "2h", "7d" ago')] = None
    until: Annotated[str | None, Field(description='ISO-8601 or "15m", "2h", "7d" ago')] = None
    user: Annotated[str | None, Field(description="user name")] = None
    key_id: int | None = None
    model: Annotated[str | None, Field(description="requested model")] = None
    status: StatusFilter | None = None
    request_id: str | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0)] = 0


# --- responses (for the OpenAPI document, and checked against real responses in tests) -------


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthOut(Out):
    status: Literal["ok"]


class GroupOut(Out):
    id: int
    name: str
    description: str
    price_multiplier: str
    price_multiplier_ppm: int
    allowed_models: list[str] | None
    user_count: int
    created_at: str
    created_at_ms: int


class UserOut(Out):
    id: int
    name: str
    email: str | None
    role: str
    status: str
    group: str
    balance_nano: int
    balance_usd: str
    created_at: str
    created_at_ms: int


class LedgerEntryOut(Out):
    request_id: str
    kind: str
    key_id: int | None
    amount_nano: int
    amount_usd: str
    note: str
    created_at: str
    created_at_ms: int


class KeyOut(Out):
    id: int
    name: str
    user: str
    masked: str
    status: str
    expires_at: str | None
    expires_at_ms: int | None
    spend_limit_nano: int | None
    spend_limit_usd: str | None
    spent_nano: int
    spent_usd: str
    allowed_models: list[str] | None
    allowed_ips: list[str] | None
    environment: str
    project: str | None
    created_at: str
    created_at_ms: int


class KeyCreatedOut(KeyOut):
    key: Annotated[str, Field(description="the full API key; shown only in this response")]


class ChannelOut(Out):
    id: int
    name: str
    type: str
    base_url: str
    has_credential: bool
    models: list[str]
    model_mapping: dict[str, str]
    groups: list[str]
    priority: int
    weight: int
    status: str
    created_at: str
    created_at_ms: int


class PriceOut(Out):
    model: str
    input_usd_per_mtok: str
    output_usd_per_mtok: str
    cached_input_usd_per_mtok: str | None
    per_request_usd: str | None
    input_nano_per_mtok: int
    output_nano_per_mtok: int
    cached_input_nano_per_mtok: int | None
    per_request_nano: int | None


def _log_out_model() -> type[Out]:
    # Built from the table so a new request_logs column shows up in the document by itself.
    fields: dict[str, Any] = {}
    for column in request_logs.columns:
        py: type = str
        if isinstance(column.type, Boolean):
            py = bool
        elif isinstance(column.type, Integer):
            py = int
        elif not isinstance(column.type, String | Text):
            py = object
        fields[str(column.name)] = (py | None if column.nullable else py, ...)
    fields["created_at"] = (str, ...)
    fields["cost_usd"] = (str, ...)
    return create_model("LogOut", __base__=Out, **fields)


LogOut = _log_out_model()


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: Annotated[str, Field(description="stable machine-readable code, see docs/errors.md")]
    request_id: str


class ErrorOut(BaseModel):
    error: ErrorDetail
