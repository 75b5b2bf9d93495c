from __future__ import annotations

import orjson
import pytest

from tollway.pipeline import errors as E
from tollway.pipeline.upstream_errors import from_upstream_status, scrub, upstream_message
from tollway.snapshot.model import ChannelView

CREDENTIAL = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def channel(credential: str | None = CREDENTIAL) -> ChannelView:
    return ChannelView(
        id=1,
        name="primary",
        type="openai",
        base_url="https://llm.corp.internal:8443/v1",
        credential=credential,
        models=frozenset({"m"}),
        model_mapping={},
        groups=frozenset({"default"}),
        priority=0,
        weight=1,
    )


@pytest.mark.parametrize(
    ("text", "secret_parts"),
    [
        (f"Incorrect API key provided: {CREDENTIAL}.", [CREDENTIAL]),
        (f"key={CREDENTIAL}&user=1 and again {CREDENTIAL}", [CREDENTIAL]),
        ("POST https://llm.corp.internal:8443/v1/chat/completions failed", ["llm.corp.internal", "8443", "https://"]),
        ("see http://10.1.2.3:8000/docs?x=1 for details", ["10.1.2.3", "8000", "/docs"]),
        ("dial tcp 10.20.30.40:11434: connection refused", ["10.20.30.40", "11434"]),
        ("upstream 192.168.0.7 is down", ["192.168.0.7"]),
        ("cannot reach vllm-0.vllm.default.svc.cluster.local:8000", ["vllm-0", "svc.cluster.local", "8000"]),
        ("host gpu-box.lan timed out", ["gpu-box"]),
        ("ollama.intra refused", ["ollama.intra"]),
        ("proxy at edge.example.com:3128 said no", ["edge.example.com", "3128"]),
        ("forwarded via api.deepseek.ai", ["api.deepseek.ai"]),
    ],
)
def test_scrub_removes_credentials_urls_addresses_and_hosts(text: str, secret_parts: list[str]) -> None:
    cleaned = scrub(text, channel())
    for part in secret_parts:
        assert part not in cleaned


def test_scrub_keeps_the_useful_words() -> None:
    text = f"Incorrect API key provided: {CREDENTIAL}. You can find your key at https://platform.example.com/keys."
    assert scrub(text, channel()) == "Incorrect API key provided: [credential]. You can find your key at [url]"
    assert scrub("dial tcp 10.0.0.1:80: refused", channel()) == "dial tcp [address]: refused"
    assert scrub("node db-1.corp is down", channel()) == "node [host] is down"


def test_scrub_leaves_ordinary_messages_alone() -> None:
    text = "This model's maximum context length is 128000 tokens. However, you requested 130512 tokens (v1.2)."
    assert scrub(text, channel()) == text


def test_scrub_without_a_credential() -> None:
    assert scrub("plain text", channel(credential=None)) == "plain text"


def test_scrub_removes_ipv6_addresses() -> None:
    cleaned = scrub("dial tcp [fd00:10:96::5]:443: connection refused", channel())
    assert "fd00:10:96::5" not in cleaned


def test_credential_cut_by_the_non_json_truncation_does_not_leak() -> None:
    body = b"x" * 265 + f" invalid token {CREDENTIAL}".encode()  # the key starts at byte 280
    err = from_upstream_status(400, body, channel())
    assert CREDENTIAL[:12] not in err.message_en


def test_upstream_message_shapes() -> None:
    assert upstream_message(b'{"error":{"message":"bad things","type":"x"}}') == "bad things"
    assert upstream_message(b'{"error":"plain string"}') == "plain string"
    assert upstream_message(b'{"error":{"code":5}}') == ""
    assert upstream_message(b'{"detail":"x"}') == ""
    assert upstream_message(b"[1]") == ""
    assert upstream_message(b"  <html>Bad Gateway</html>\n") == "<html>Bad Gateway</html>"
    assert upstream_message(b"y" * 1000) == "y" * 1000  # cut only after scrubbing (below)
    assert len(from_upstream_status(500, b"y" * 1000, channel()).extra["reason"]) < 350
    assert upstream_message(b"\xff\xfe bad utf8") == "\ufffd\ufffd bad utf8"


@pytest.mark.parametrize(
    ("status", "kind", "needle"),
    [
        (400, E.BAD_REQUEST, "rejected the request"),
        (404, E.BAD_REQUEST, "rejected the request"),
        (413, E.BAD_REQUEST, "rejected the request"),
        (422, E.BAD_REQUEST, "rejected the request"),
        (401, E.UPSTREAM_ERROR, "an admin must fix the channel"),
        (403, E.UPSTREAM_ERROR, "an admin must fix the channel"),
        (429, E.UPSTREAM_ERROR, "rate limiting"),
        (500, E.UPSTREAM_ERROR, "HTTP 500"),
        (503, E.UPSTREAM_ERROR, "HTTP 503"),
    ],
)
def test_status_mapping(status: int, kind: E.ErrorKind, needle: str) -> None:
    err = from_upstream_status(status, b'{"error":{"message":"nope"}}', channel())
    assert err.kind is kind
    assert needle in err.message_en
    assert err.message_zh and err.message_zh != err.message_en
    assert "nope" in err.message_en or "nope" in str(err.extra["reason"])  # said once, where it belongs
    assert f"upstream answered HTTP {status}" in str(err.extra["reason"])
    assert f"{err.message_en} ({err.extra['reason']})".count("nope") == 1  # the log's failure_reason


def test_bad_request_passes_the_scrubbed_upstream_message_on() -> None:
    body = orjson.dumps({"error": {"message": f"key {CREDENTIAL} cannot use model at https://x.corp.internal/v1"}})
    err = from_upstream_status(400, body, channel())
    assert err.message_en == "the upstream provider rejected the request: key [credential] cannot use model at [url]"
    assert CREDENTIAL not in err.message_zh


def test_auth_failure_keeps_upstream_text_out_of_the_client_message() -> None:
    body = orjson.dumps({"error": {"message": f"Incorrect API key provided: {CREDENTIAL}"}})
    err = from_upstream_status(401, body, channel())
    assert "Incorrect API key" not in err.message_en
    reason = str(err.extra["reason"])
    assert "Incorrect API key provided: [credential]" in reason
    assert CREDENTIAL not in reason


def test_empty_upstream_body_still_names_the_status() -> None:
    err = from_upstream_status(422, b"", channel())
    assert err.message_en == "the upstream provider rejected the request: HTTP 422"
    assert err.extra["reason"] == "upstream answered HTTP 422"


def test_long_messages_are_capped() -> None:
    err = from_upstream_status(400, orjson.dumps({"error": {"message": "z" * 5000}}), channel())
    assert err.message_en.count("z") == 300
