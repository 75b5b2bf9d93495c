"""The one error type a pipeline step raises, and the catalog of stable error codes.

Every code is documented in docs/errors.md; the catalog below is the single source of the
HTTP status, the OpenAI error `type`, and whether a caller may retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str
    status: int
    type: str  # OpenAI error "type"
    retryable: bool = False


# Stable codes. Never rename one: clients and support scripts match on them.
MISSING_API_KEY = ErrorKind("missing_api_key", 401, "authentication_error")
INVALID_API_KEY = ErrorKind("invalid_api_key", 401, "authentication_error")
EXPIRED_API_KEY = ErrorKind("expired_api_key", 401, "authentication_error")
DISABLED_API_KEY = ErrorKind("disabled_api_key", 401, "authentication_error")
USER_DISABLED = ErrorKind("user_disabled", 403, "permission_error")
IP_NOT_ALLOWED = ErrorKind("ip_not_allowed", 403, "permission_error")
INSUFFICIENT_BALANCE = ErrorKind("insufficient_balance", 402, "insufficient_quota")
KEY_LIMIT_REACHED = ErrorKind("key_limit_reached", 402, "insufficient_quota")
MODEL_NOT_ALLOWED_FOR_KEY = ErrorKind("model_not_allowed_for_key", 403, "permission_error")
MODEL_NOT_IN_GROUP = ErrorKind("model_not_in_group", 403, "permission_error")
MODEL_NOT_FOUND = ErrorKind("model_not_found", 404, "invalid_request_error")
NO_AVAILABLE_CHANNEL = ErrorKind("no_available_channel", 503, "service_unavailable", retryable=True)
UPSTREAM_ERROR = ErrorKind("upstream_error", 502, "upstream_error", retryable=True)
UPSTREAM_TIMEOUT = ErrorKind("upstream_timeout", 504, "upstream_error", retryable=True)
UPSTREAM_STREAM_INTERRUPTED = ErrorKind("upstream_stream_interrupted", 502, "upstream_error", retryable=True)
# Logged only: the caller hung up mid-stream (nginx's 499), so there is nobody to answer.
CLIENT_DISCONNECTED = ErrorKind("client_disconnected", 499, "client_closed_request")
BAD_REQUEST = ErrorKind("bad_request", 400, "invalid_request_error")
REQUEST_TOO_LARGE = ErrorKind("request_too_large", 413, "invalid_request_error")
UNSUPPORTED_ENDPOINT = ErrorKind("unsupported_endpoint", 404, "invalid_request_error")
METHOD_NOT_ALLOWED = ErrorKind("method_not_allowed", 405, "invalid_request_error")
ADMIN_UNAUTHORIZED = ErrorKind("admin_unauthorized", 401, "authentication_error")
NOT_FOUND = ErrorKind("not_found", 404, "invalid_request_error")
CONFLICT = ErrorKind("conflict", 409, "invalid_request_error")
INTERNAL_ERROR = ErrorKind("internal_error", 500, "server_error", retryable=True)

ALL_KINDS: tuple[ErrorKind, ...] = tuple(v for v in list(globals().values()) if isinstance(v, ErrorKind))


@dataclass(slots=True)
class GatewayError(Exception):
    """Stops a request. Carries everything the HTTP layer and the request log need."""

    kind: ErrorKind
    message_en: str
    message_zh: str
    param: str | None = None
    # Upstream tokens already billed to us, if any: then the request is charged and the log says why.
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message_en)

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def code(self) -> str:
        return self.kind.code

    def message(self, accept_language: str | None) -> str:
        return self.message_zh if prefers_chinese(accept_language) else self.message_en


def prefers_chinese(accept_language: str | None) -> bool:
    """True when the first language the caller lists is Chinese (zh, zh-CN, zh-Hans, ...)."""
    if not accept_language:
        return False
    first = accept_language.split(",", 1)[0].strip().lower()
    return first.startswith("zh")


# Refusals of a request body, shared by the relay (pipeline/steps.py) and the admin API.
def invalid_json_error() -> GatewayError:
    return GatewayError(BAD_REQUEST, "request body is not valid JSON", "请求体不是有效的 JSON")


def body_not_object_error() -> GatewayError:
    return GatewayError(BAD_REQUEST, "request body must be a JSON object", "请求体必须是 JSON 对象")
