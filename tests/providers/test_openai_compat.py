from __future__ import annotations

import orjson
import pytest

from tollway.providers.base import Endpoint
from tollway.providers.openai_compat import (
    StreamInspector,
    build_request,
    client_wants_usage,
    response_text,
    response_usage,
)
from tollway.providers.openai_stream import streamed_text
from tollway.snapshot.model import ChannelView
from tollway.wire.sse import EventSplitter
from tollway.wire.usage import Usage

CREDENTIAL = "sk-upstream-0123456789abcdef"


def channel(*, credential: str | None = CREDENTIAL, base_url: str = "http://127.0.0.1:9/v1") -> ChannelView:
    return ChannelView(
        id=1,
        name="primary",
        type="openai",
        base_url=base_url,
        credential=credential,
        models=frozenset({"gpt-4o-mini", "fast"}),
        model_mapping={"fast": "gpt-4o-mini"},
        groups=frozenset({"default"}),
        priority=0,
        weight=1,
    )


def build(
    raw: bytes, *, upstream_model: str | None = None, endpoint: Endpoint = Endpoint.CHAT, ch: ChannelView | None = None
):  # type: ignore[no-untyped-def]
    body = orjson.loads(raw)
    return build_request(
        endpoint,
        ch or channel(),
        raw,
        body,
        upstream_model=upstream_model or body["model"],
        stream=bool(body.get("stream")),
        client_wants_usage=client_wants_usage(body),
    )


# Odd spacing and key order on purpose: passthrough must not normalize either.
PLAIN = b'{ "model" : "gpt-4o-mini",\n  "messages": [{"role":"user","content":"hi \\u00e9"}], "temperature": 0.70 }'


def test_passthrough_keeps_the_exact_bytes() -> None:
    request = build(PLAIN)
    assert request.body is PLAIN


def test_stream_where_client_asked_for_usage_keeps_the_exact_bytes() -> None:
    raw = b'{"stream": true, "stream_options": {"include_usage": true}, "model": "gpt-4o-mini", "messages": [1]}'
    request = build(raw)
    assert request.body is raw
    assert request.headers["Accept"] == "text/event-stream"


def test_mapping_rewrites_only_the_model() -> None:
    raw = PLAIN.replace(b'"gpt-4o-mini"', b'"fast"')
    request = build(raw, upstream_model="gpt-4o-mini")
    sent = orjson.loads(request.body)
    original = orjson.loads(raw)
    assert sent["model"] == "gpt-4o-mini"
    assert {k: v for k, v in sent.items() if k != "model"} == {k: v for k, v in original.items() if k != "model"}
    assert list(sent) == list(original)  # key order kept
    assert "stream_options" not in sent


def test_stream_without_usage_option_gets_include_usage_injected() -> None:
    raw = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}]}'
    sent = orjson.loads(build(raw).body)
    assert sent["stream_options"] == {"include_usage": True}
    assert {k: v for k, v in sent.items() if k != "stream_options"} == orjson.loads(raw)


def test_injection_keeps_other_stream_options_and_overrides_false() -> None:
    raw = b'{"model":"gpt-4o-mini","stream":true,"messages":[1],"stream_options":{"include_usage":false,"x":1}}'
    assert not client_wants_usage(orjson.loads(raw))
    sent = orjson.loads(build(raw).body)
    assert sent["stream_options"] == {"include_usage": True, "x": 1}


def test_injection_replaces_a_malformed_stream_options() -> None:
    raw = b'{"model":"gpt-4o-mini","stream":true,"messages":[1],"stream_options":"yes"}'
    assert orjson.loads(build(raw).body)["stream_options"] == {"include_usage": True}


def test_non_stream_never_gets_stream_options() -> None:
    raw = b'{"model":"gpt-4o-mini","stream":false,"messages":[1]}'
    request = build(raw)
    assert request.body is raw
    assert request.headers["Accept"] == "application/json"


def test_mapping_and_injection_together() -> None:
    raw = b'{"model":"fast","stream":true,"messages":[1]}'
    sent = orjson.loads(build(raw, upstream_model="gpt-4o-mini").body)
    assert sent == {"model": "gpt-4o-mini", "stream": True, "messages": [1], "stream_options": {"include_usage": True}}


@pytest.mark.parametrize(
    ("options", "wants"),
    [
        (None, False),
        ({}, False),
        ({"include_usage": False}, False),
        ({"include_usage": "true"}, False),
        ({"include_usage": 1}, False),
        ({"include_usage": True}, True),
    ],
)
def test_client_wants_usage_only_for_literal_true(options: object, wants: bool) -> None:
    body = {"model": "m"} if options is None else {"model": "m", "stream_options": options}
    assert client_wants_usage(body) is wants


def test_url_and_headers() -> None:
    request = build(PLAIN, endpoint=Endpoint.EMBEDDINGS)
    assert request.url == "http://127.0.0.1:9/v1/embeddings"
    assert build(PLAIN).url == "http://127.0.0.1:9/v1/chat/completions"
    assert build(PLAIN, endpoint=Endpoint.COMPLETIONS).url == "http://127.0.0.1:9/v1/completions"
    assert request.headers == {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {CREDENTIAL}",
    }


def test_no_credential_means_no_authorization_header() -> None:
    request = build(PLAIN, ch=channel(credential=None))
    assert "Authorization" not in request.headers


# --- responses -----------------------------------------------------------------------------


def test_response_usage_reads_usage() -> None:
    body = (
        b'{"id":"x","choices":[],'
        b'"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":8}}}'
    )
    assert response_usage(body) == Usage(9, 4, 8)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'"s"', b'{"choices":[]}', b'{"usage":null}'])
def test_response_usage_none_when_absent(body: bytes) -> None:
    assert response_usage(body) is None


def test_response_text_collects_content_tool_calls_and_completions_text() -> None:
    body = orjson.dumps(
        {
            "choices": [
                {"message": {"role": "assistant", "content": "Hello"}},
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"type": "function", "function": {"name": "get_weather", "arguments": '{"c":1}'}}
                        ],
                    }
                },
                {"text": " world"},
                "junk",
            ]
        }
    )
    assert response_text(body) == 'Helloget_weather{"c":1} world'


@pytest.mark.parametrize("body", [b"oops", b"[]", b'{"choices":null}', b"{}"])
def test_response_text_empty_for_malformed(body: bytes) -> None:
    assert response_text(body) == ""


# --- streams -------------------------------------------------------------------------------

CONTENT_1 = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}],"usage":null}\n\n'
CONTENT_2 = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}],"usage":null}\n\n'
)
TOOL = (
    b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"lookup","arguments":""}}]}}]}\n\n'
    b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"q\\":2}"}}]}}]}\n\n'
)
USAGE_ONLY = (
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,'
    b'"prompt_tokens_details":{"cached_tokens":0}}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_inspector_over_a_whole_stream() -> None:
    inspector = StreamInspector()
    stripped = []
    for event in EventSplitter().feed(b": ping\n\n" + CONTENT_1 + CONTENT_2 + USAGE_ONLY + DONE):
        usage_only = inspector.inspect(event)
        stripped.append(usage_only)
        if event == DONE:
            assert inspector.done
        else:
            assert not inspector.done
    assert stripped == [False, False, False, True, False]
    assert inspector.usage == Usage(11, 2, 0)


def test_inspector_spots_usage_with_spaces_after_colon() -> None:
    event = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}\n\n'
    inspector = StreamInspector()
    assert inspector.inspect(event) is True
    assert inspector.usage == Usage(3, 1, 0)


def test_usage_in_a_chunk_with_choices_is_read_but_not_stripped() -> None:
    # Some OpenAI-compatible servers put usage on the last content chunk.
    event = (
        b'data: {"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\n'
    )
    inspector = StreamInspector()
    assert inspector.inspect(event) is False
    assert inspector.usage == Usage(5, 7, 0)


def test_null_usage_on_content_chunks_is_ignored() -> None:
    inspector = StreamInspector()
    assert inspector.inspect(CONTENT_1) is False
    assert inspector.usage is None


@pytest.mark.parametrize(
    "event",
    [
        b'data: {"usage":{"prompt_tokens":"x"}, "choices":[]}\n\n',  # malformed usage
        b'data: {"usage":{broken\n\n',  # not JSON
        b': {"usage":{"prompt_tokens":1}}\n\n',  # a comment, not data
        b'data: ["usage":{"prompt_tokens":1}]\n\n',
    ],
)
def test_inspector_ignores_malformed_usage(event: bytes) -> None:
    inspector = StreamInspector()
    assert inspector.inspect(event) is False
    assert inspector.usage is None
    assert not inspector.done


def test_done_needs_the_exact_done_payload() -> None:
    inspector = StreamInspector()
    inspector.inspect(b'data: {"choices":[{"delta":{"content":"[DONE]"}}]}\n\n')
    assert not inspector.done
    inspector.inspect(b"data: [DONE]\r\n\r\n")
    assert inspector.done


def test_streamed_text_collects_deltas_and_tool_calls() -> None:
    events = EventSplitter().feed(b": ping\n\n" + CONTENT_1 + TOOL + CONTENT_2 + USAGE_ONLY + DONE)
    assert streamed_text(events) == 'Hilookup{"q":2} there'


def test_streamed_text_for_legacy_completions() -> None:
    events = [b'data: {"choices":[{"text":"foo"}]}\n\n', b'data: {"choices":[{"text":"bar"}]}\n\n', DONE]
    assert streamed_text(events) == "foobar"


def test_streamed_text_skips_junk() -> None:
    events = [b"data: not json\n\n", b"data: [1,2]\n\n", b'data: {"choices":["x",{"delta":"y"}]}\n\n', b"event: x\n\n"]
    assert streamed_text(events) == ""
