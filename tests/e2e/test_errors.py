"""Every way a request fails, seen through the official `openai` SDK: the exception class, the
HTTP status, the stable `code`, the request id in the body, the log row (charged = false) and
an untouched balance. Then the ways a stream ends early once it has started: charged for what
the upstream produced (and the log says why), or not at all when it produced nothing."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest

from tests.e2e.conftest import (
    NARROW_GROUP,
    ORPHAN_MODEL,
    UNPRICED_MODEL,
    UPSTREAM_KEY,
    Account,
    Stage,
    unique,
)
from tests.support.fake_upstream import LEAK_MARKER
from tollway.admin import groups, keys, users

Chat = Callable[[openai.OpenAI], Any]


def chat(model: str = "gpt-4o-mini", **extra: Any) -> Chat:
    return lambda client: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": unique("fail")}], **extra
    )


def expect_failure(
    stage: Stage,
    call: Callable[[], Any],
    error_class: type[openai.APIStatusError],
    status: int,
    code: str,
    *,
    account: Account | None = None,
    logged: bool = True,
) -> openai.APIStatusError:
    """Runs `call`, which must fail exactly so; checks the body, the log row and the balance."""
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    exc = caught.value
    assert type(exc) is error_class, f"{type(exc).__name__}: {exc}"
    assert exc.status_code == status
    assert exc.code == code and exc.body["code"] == code
    request_id = exc.body["request_id"]
    assert request_id.startswith("req_") and exc.response.headers["X-Request-Id"] == request_id
    assert exc.body["message"]
    if logged:
        row = stage.log_row(request_id)
        assert (row["status_code"], row["error_code"]) == (status, code)
        assert row["charged"] is False and row["cost_nano"] == 0
        assert row["charge_reason"].startswith("not charged")
        if account is not None:
            assert row["key_id"] == account.key_id
    if account is not None:
        assert stage.balance(account.user) == account.balance_nano, "a failed request must not be charged"
    return exc


def raw_post(url: str, body: bytes, key: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, text = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        status, headers, text = err.code, dict(err.headers), err.read()
    try:
        return status, headers, orjson.loads(text)
    except orjson.JSONDecodeError:
        raise AssertionError(f"HTTP {status} answered with no JSON body: {text[:200]!r}") from None


# -- who is calling ---------------------------------------------------------------------------


def test_missing_key(stage: Stage) -> None:
    client = stage.client("unused")
    exc = expect_failure(
        stage,
        lambda: chat(extra_headers={"Authorization": openai.Omit()})(client),
        openai.AuthenticationError,
        401,
        "missing_api_key",
    )
    assert "Authorization: Bearer" in exc.body["message"]


def test_invalid_key(stage: Stage) -> None:
    made_up = "sk-" + "x" * 40 + "WXYZ"
    exc = expect_failure(
        stage, lambda: chat()(stage.client(made_up)), openai.AuthenticationError, 401, "invalid_api_key"
    )
    assert made_up not in exc.response.text, "even a wrong key is only ever shown masked"
    assert "WXYZ" in exc.body["message"]


def test_expired_key(stage: Stage) -> None:
    account = stage.account(expires_at="1s")
    key_row = keys.get_key(stage.engine, account.key_id)
    time.sleep(max(0.0, key_row["expires_at_ms"] / 1000 - time.time()) + 0.05)
    expect_failure(
        stage,
        lambda: chat()(stage.client(account.key)),
        openai.AuthenticationError,
        401,
        "expired_api_key",
        account=account,
    )


def test_disabled_key(stage: Stage) -> None:
    account = stage.account()
    keys.update_key(stage.engine, account.key_id, status="disabled")
    client = stage.client(account.key)
    _wait_until_refused(client.models.list, "disabled_api_key")
    expect_failure(stage, lambda: chat()(client), openai.AuthenticationError, 401, "disabled_api_key", account=account)


def test_disabled_user(stage: Stage) -> None:
    account = stage.account()
    users.update_user(stage.engine, account.user, status="disabled")
    client = stage.client(account.key)
    _wait_until_refused(client.models.list, "user_disabled")
    exc = expect_failure(
        stage, lambda: chat()(client), openai.PermissionDeniedError, 403, "user_disabled", account=account
    )
    assert account.user in exc.body["message"]


def test_ip_not_allowed(stage: Stage) -> None:
    account = stage.account(allowed_ips=["10.0.0.0/8"])
    exc = expect_failure(
        stage,
        lambda: chat()(stage.client(account.key)),
        openai.PermissionDeniedError,
        403,
        "ip_not_allowed",
        account=account,
    )
    assert "127.0.0.1" in exc.body["message"]


# -- money ----------------------------------------------------------------------------------------


def test_insufficient_balance(stage: Stage) -> None:
    account = stage.account(balance_usd="0")
    expect_failure(
        stage,
        lambda: chat()(stage.client(account.key)),
        openai.APIStatusError,
        402,
        "insufficient_balance",
        account=account,
    )


def test_key_limit_reached(stage: Stage) -> None:
    account = stage.account(spend_limit_usd="0.000001")
    expect_failure(
        stage,
        lambda: chat()(stage.client(account.key)),
        openai.APIStatusError,
        402,
        "key_limit_reached",
        account=account,
    )
    assert keys.get_key(stage.engine, account.key_id)["spent_nano"] == 0


# -- which model -----------------------------------------------------------------------------------


def test_model_not_allowed_for_key(stage: Stage) -> None:
    account = stage.account(allowed_models=["gpt-4o-mini"])
    exc = expect_failure(
        stage,
        lambda: chat("fake-model")(stage.client(account.key)),
        openai.PermissionDeniedError,
        403,
        "model_not_allowed_for_key",
        account=account,
    )
    assert "[gpt-4o-mini]" in exc.body["message"] and exc.body["param"] == "model"


def test_model_not_in_group(stage: Stage) -> None:
    account = stage.account(group=NARROW_GROUP)
    exc = expect_failure(
        stage,
        lambda: chat("fake-model")(stage.client(account.key)),
        openai.PermissionDeniedError,
        403,
        "model_not_in_group",
        account=account,
    )
    assert f"`{NARROW_GROUP}`" in exc.body["message"]


def test_group_no_channel_serves(stage: Stage) -> None:
    """The model is priced and served, but no channel lists this user's group."""
    groups.create_group(stage.engine, "island")
    account = stage.account(group="island")
    exc = expect_failure(
        stage,
        lambda: chat()(stage.client(account.key)),
        openai.PermissionDeniedError,
        403,
        "model_not_in_group",
        account=account,
    )
    assert "`island`" in exc.body["message"]
    assert list(stage.client(account.key).models.list()) == []


def test_unknown_model_suggests_the_close_one(stage: Stage) -> None:
    account = stage.account()
    exc = expect_failure(
        stage,
        lambda: chat("gpt-4o-mni")(stage.client(account.key)),
        openai.NotFoundError,
        404,
        "model_not_found",
        account=account,
    )
    assert "did you mean `gpt-4o-mini`" in exc.body["message"]


def test_unpriced_model(stage: Stage) -> None:
    account = stage.account()
    exc = expect_failure(
        stage,
        lambda: chat(UNPRICED_MODEL)(stage.client(account.key)),
        openai.NotFoundError,
        404,
        "model_not_found",
        account=account,
    )
    assert "no price" in exc.body["message"]


def test_no_available_channel(stage: Stage) -> None:
    account = stage.account()
    expect_failure(
        stage,
        lambda: chat(ORPHAN_MODEL)(stage.client(account.key)),
        openai.InternalServerError,
        503,
        "no_available_channel",
        account=account,
    )


# -- the upstream ------------------------------------------------------------------------------


def test_upstream_error_hides_the_upstream_internals(stage: Stage) -> None:
    account = stage.account()
    exc = expect_failure(
        stage,
        lambda: chat("fail-500-gpt")(stage.client(account.key)),
        openai.InternalServerError,
        502,
        "upstream_error",
        account=account,
    )
    assert LEAK_MARKER not in exc.response.text
    assert UPSTREAM_KEY not in exc.response.text
    row = stage.log_row(exc.body["request_id"])
    assert "HTTP 500" in row["failure_reason"], "support staff still learn what the upstream said"
    assert UPSTREAM_KEY not in row["failure_reason"]


@pytest.mark.parametrize(
    ("model", "error_class", "status", "code"),
    [
        ("fail-400-gpt", openai.BadRequestError, 400, "bad_request"),
        (
            "fail-401-gpt",
            openai.InternalServerError,
            502,
            "upstream_error",
        ),  # the channel's credential, not the caller's
        ("fail-429-gpt", openai.InternalServerError, 502, "upstream_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_refusals_never_leak(
    stage: Stage, model: str, error_class: type[openai.APIStatusError], status: int, code: str, stream: bool
) -> None:
    """Refused before the first byte, a stream request gets a plain JSON error too."""
    account = stage.account()
    exc = expect_failure(
        stage, lambda: chat(model, stream=stream)(stage.client(account.key)), error_class, status, code, account=account
    )
    assert LEAK_MARKER not in exc.response.text and UPSTREAM_KEY not in exc.response.text
    assert exc.response.headers["Content-Type"].startswith("application/json")


def test_upstream_timeout(stage: Stage) -> None:
    """The server under test runs with a 3 s upstream read timeout; this upstream takes 5 s."""
    account = stage.account()
    started = time.monotonic()
    expect_failure(
        stage,
        lambda: chat("slow-5000-gpt")(stage.client(account.key)),
        openai.InternalServerError,
        504,
        "upstream_timeout",
        account=account,
    )
    assert time.monotonic() - started < 4.9, "the gateway gave up before the upstream answered"


# -- the request itself ---------------------------------------------------------------------------


def test_invalid_json_body(stage: Stage) -> None:
    account = stage.account()
    status, headers, body = raw_post(
        f"{stage.gateway.base_url}/chat/completions", b'{"model": "gpt-4o-mini", ', account.key
    )
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["request_id"] == headers["X-Request-Id"]
    row = stage.log_row(body["error"]["request_id"])
    assert (row["error_code"], row["charged"]) == ("bad_request", False)
    assert stage.balance(account.user) == account.balance_nano


def test_missing_messages(stage: Stage) -> None:
    account = stage.account()
    status, _, body = raw_post(
        f"{stage.gateway.base_url}/chat/completions", orjson.dumps({"model": "gpt-4o-mini"}), account.key
    )
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "bad_request", "messages")
    assert stage.log_row(body["error"]["request_id"])["error_code"] == "bad_request"

    client = stage.client(account.key)
    exc = expect_failure(
        stage,
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[]),
        openai.BadRequestError,
        400,
        "bad_request",
        account=account,
    )
    assert exc.body["param"] == "messages"


def test_oversized_body_gets_a_json_error(stage: Stage) -> None:
    """Over the 32 MiB limit: still the OpenAI error shape, a request id and a log row."""
    account = stage.account()
    too_big = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (33 * 1024 * 1024)}]}
    )
    status, headers, body = raw_post(f"{stage.gateway.base_url}/chat/completions", too_big, account.key)
    assert status in (400, 413)
    assert body["error"]["code"] and body["error"]["request_id"] == headers["X-Request-Id"]
    row = stage.log_row(body["error"]["request_id"])
    assert (row["status_code"], row["error_code"], row["charged"]) == (status, body["error"]["code"], False)
    assert stage.balance(account.user) == account.balance_nano


def test_base_url_without_v1_gets_a_hint(stage: Stage) -> None:
    account = stage.account()
    client = openai.OpenAI(base_url=stage.gateway.root_url, api_key=account.key, max_retries=0)
    exc = expect_failure(
        stage, lambda: chat()(client), openai.NotFoundError, 404, "unsupported_endpoint", account=account, logged=False
    )
    assert "missing `/v1`" in exc.body["message"]
    assert f"{stage.gateway.root_url}/v1" in exc.body["message"]


def test_chinese_message_for_chinese_callers(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key, default_headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    exc = expect_failure(
        stage, lambda: chat("gpt-4o-mni")(client), openai.NotFoundError, 404, "model_not_found", account=account
    )
    assert "不存在模型" in exc.body["message"] and "gpt-4o-mini" in exc.body["message"]

    per_request = expect_failure(
        stage,
        lambda: chat(extra_headers={"Accept-Language": "zh-CN"})(stage.client("sk-not-a-real-key-at-all-1234")),
        openai.AuthenticationError,
        401,
        "invalid_api_key",
    )
    assert "无效" in per_request.body["message"]


# -- streams that end early ---------------------------------------------------------------------


def test_stream_cut_by_the_upstream(stage: Stage) -> None:
    account = stage.account()
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="cut-3-gpt", messages=[{"role": "user", "content": unique("cut")}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    exc = caught.value
    assert type(exc) is openai.APIError, "an error event mid-stream, not an HTTP status"
    assert len(received) == 4  # the role chunk and three content chunks
    assert "".join(c.choices[0].delta.content or "" for c in received) == "Hello! This is "
    assert exc.body["code"] == "upstream_stream_interrupted"
    assert exc.body["request_id"] == raw.headers["X-Request-Id"]

    row = stage.log_row(raw.headers["X-Request-Id"])
    assert row["error_code"] == "upstream_stream_interrupted"
    assert row["usage_source"] == "estimated" and row["completion_tokens"] > 0
    assert row["charged"] is True and row["cost_nano"] > 0
    reason = row["charge_reason"]
    assert reason.startswith("charged") and "completion tokens" in reason and "estimated" in reason
    assert "upstream" in reason and "stream" in reason, "the reason names what went wrong"
    assert stage.balance(account.user) == account.balance_nano - row["cost_nano"]


def test_stream_error_event_speaks_the_callers_language(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key, default_headers={"Accept-Language": "zh-CN"})
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(
            model="cut-3-gpt", messages=[{"role": "user", "content": unique("cut")}], stream=True
        ):
            pass
    assert caught.value.body["code"] == "upstream_stream_interrupted"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in caught.value.body["message"]), caught.value.body["message"]


def test_client_disconnect_mid_stream(stage: Stage) -> None:
    account = stage.account()
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="drip-200-gpt", messages=[{"role": "user", "content": unique("hang up")}], stream=True
    )
    stream = raw.parse()
    received = []
    for chunk in stream:
        received.append(chunk)
        if len(received) == 2:
            break
    stream.close()

    row = stage.log_row(raw.headers["X-Request-Id"], timeout_s=5.0)
    assert (row["status_code"], row["error_code"]) == (499, "client_disconnected")
    assert row["usage_source"] == "estimated" and row["completion_tokens"] > 0
    assert row["charged"] is True and row["cost_nano"] > 0
    reason = row["charge_reason"]
    assert reason.startswith("charged") and "disconnected" in reason and "estimated" in reason
    assert stage.balance(account.user) == account.balance_nano - row["cost_nano"]


def test_upstream_silent_mid_stream_times_out(stage: Stage) -> None:
    """The upstream sends the role chunk, then nothing for longer than the server's 3 s read
    timeout: the client gets that chunk, then an error event; nothing was produced, so
    nothing is charged."""
    account = stage.account()
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="drip-4000-gpt", messages=[{"role": "user", "content": unique("silence")}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    assert type(caught.value) is openai.APIError
    assert [c.choices[0].delta.role for c in received] == ["assistant"]
    assert caught.value.body["code"] == "upstream_timeout"
    assert caught.value.body["request_id"] == raw.headers["X-Request-Id"]
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert (row["status_code"], row["error_code"]) == (504, "upstream_timeout")
    assert row["charged"] is False and row["cost_nano"] == 0
    assert stage.balance(account.user) == account.balance_nano


def test_client_gone_before_a_whole_answer_is_logged_as_such(stage: Stage) -> None:
    account = stage.account()
    impatient = stage.client(account.key, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="slow-1500-gpt", messages=[{"role": "user", "content": unique("gone")}])

    (row,) = stage.log_rows_for_key(account.key_id, 1, timeout_s=4.0)
    assert (row["status_code"], row["error_code"]) == (499, "client_disconnected")
    # The upstream did answer (and bills for it), so charging is right; the log must say the caller left.
    assert row["charged"] is True and "disconnected" in row["charge_reason"]


def _wait_until_refused(call: Callable[[], Any], code: str, timeout_s: float = 2.0) -> None:
    """Config changes reach the server by polling; wait until this one has. Callers poll
    with the (free) model list, so the wait itself charges nothing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            call()
        except openai.APIStatusError as exc:
            if exc.code == code:
                return
        time.sleep(0.05)
    raise AssertionError(f"the server did not start answering {code} within {timeout_s} s")


def _hang_up_on_a_stream(stage: Stage, model: str) -> tuple[Account, dict[str, Any]]:
    account = stage.account()
    impatient = stage.client(account.key, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        for _ in impatient.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": unique("gone early")}]
        ):
            pass
    (row,) = stage.log_rows_for_key(account.key_id, 1, timeout_s=4.0)
    return account, row


def test_client_gone_before_the_upstream_answered_is_not_charged(stage: Stage) -> None:
    """The caller hangs up before the upstream sent anything: nothing produced, nothing charged,
    and the log says who left."""
    account, row = _hang_up_on_a_stream(stage, "slow-1500-gpt")
    assert (row["status_code"], row["error_code"]) == (499, "client_disconnected")
    assert row["charged"] is False and "before any tokens" in row["charge_reason"]
    assert stage.balance(account.user) == account.balance_nano


def test_client_gone_before_the_first_chunk_is_charged_for_what_arrived(stage: Stage) -> None:
    """The upstream sent its headers, the caller hung up, then the answer arrived. Whatever
    Tollway received before it noticed (all of it, or only the empty role chunk, depending on
    how the bytes were batched) is charged, and the row is a 499 — never a delivered answer."""
    account, row = _hang_up_on_a_stream(stage, "stall-1500-gpt")
    assert (row["status_code"], row["error_code"]) == (499, "client_disconnected")
    assert row["charged"] is (row["cost_nano"] > 0)
    assert "the client disconnected" in row["charge_reason"]
    assert stage.balance(account.user) == account.balance_nano - row["cost_nano"]
