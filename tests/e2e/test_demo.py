"""`tollway serve --demo`: a newcomer's first minute. The banner shows an admin token and a key
once, and the key works with the official SDK against the built-in demo model, no network."""

from __future__ import annotations

import math
import re
from pathlib import Path

import openai
import pytest
from sqlalchemy import func, select

from tests.e2e.conftest import Demo, Stage, start_demo
from tests.support.gateway import GatewayProcess
from tollway.admin import users
from tollway.admin.demo import DEMO_BALANCE_USD, DEMO_USER
from tollway.billing.money import usd_to_nano
from tollway.providers.demo import DEMO_CHAT_MODEL, DEMO_EMBEDDING_MODEL
from tollway.store.tables import request_logs


def test_banner_shows_admin_token_and_key_once(demo: Demo) -> None:
    assert demo.admin_token is not None and demo.admin_token.startswith("tw-admin-")
    assert demo.api_key is not None and demo.api_key.startswith("sk-")
    assert demo.banner.count(demo.api_key) >= 1
    assert "shown once" in demo.banner


def test_chat_with_the_demo_key(demo: Demo) -> None:
    assert demo.api_key is not None
    raw = demo.stage.client(demo.api_key).chat.completions.with_raw_response.create(
        model=DEMO_CHAT_MODEL, messages=[{"role": "user", "content": "Hello, toll road!"}]
    )
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text and "Hello, toll road!" in text
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    row = demo.stage.log_row(raw.headers["X-Request-Id"])
    assert row["user_name"] == DEMO_USER and row["channel_name"] == "demo"
    assert row["usage_source"] == "reported" and row["charged"] is True and row["cost_nano"] > 0


def test_stream_with_the_demo_key(demo: Demo) -> None:
    assert demo.api_key is not None
    client = demo.stage.client(demo.api_key)
    chunks = list(
        client.chat.completions.create(
            model=DEMO_CHAT_MODEL, messages=[{"role": "user", "content": "Stream, please."}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream, please." in text
    assert len(chunks) > 3
    assert all(c.usage is None for c in chunks), "no usage chunk unless the client asks"

    with_usage = list(
        client.chat.completions.create(
            model=DEMO_CHAT_MODEL,
            messages=[{"role": "user", "content": "Stream, please."}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in with_usage if c.choices) == text


def test_embeddings_with_the_demo_key(demo: Demo) -> None:
    assert demo.api_key is not None
    client = demo.stage.client(demo.api_key)
    by_default = client.embeddings.create(model=DEMO_EMBEDDING_MODEL, input=["toll", "road"])  # base64 underneath
    as_floats = client.embeddings.create(model=DEMO_EMBEDDING_MODEL, input=["toll", "road"], encoding_format="float")
    assert len(by_default.data) == 2
    for decoded, floats in zip(by_default.data, as_floats.data, strict=True):
        assert decoded.embedding == pytest.approx(floats.embedding, abs=1e-6)
        assert math.fsum(v * v for v in floats.embedding) == pytest.approx(1.0, abs=1e-5)
    assert by_default.usage.prompt_tokens > 0


def test_demo_balance_is_charged(demo: Demo) -> None:
    """The demo user started with DEMO_BALANCE_USD; every request of this module so far was
    charged from it. Earlier tests' rows commit in order before this one's, so once this row
    is in, the balance must equal the start minus every logged charge."""
    assert demo.api_key is not None
    raw = demo.stage.client(demo.api_key).chat.completions.with_raw_response.create(
        model=DEMO_CHAT_MODEL, messages=[{"role": "user", "content": "What does this cost?"}]
    )
    raw.parse()
    row = demo.stage.log_row(raw.headers["X-Request-Id"])
    assert row["cost_nano"] > 0
    with demo.stage.engine.connect() as conn:
        charged = conn.execute(
            select(func.sum(request_logs.c.cost_nano)).where(
                request_logs.c.user_name == DEMO_USER, request_logs.c.charged.is_(True)
            )
        ).scalar_one()
    assert users.get_user(demo.stage.engine, DEMO_USER)["balance_nano"] == usd_to_nano(DEMO_BALANCE_USD) - charged


def test_second_start_prints_no_new_key_and_the_first_still_works(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_demo(data_dir)
    try:
        assert first.api_key is not None and first.admin_token is not None
    finally:
        first.stage.gateway.close()

    second = start_demo(data_dir)
    try:
        assert second.api_key is None, second.banner
        assert not re.search(r"sk-[A-Za-z0-9_-]{20,}", second.banner), "no key is ever printed twice"
        assert second.admin_token is None, "the admin token was shown by the first start only"
        assert "already set up" in second.banner
        completion = second.stage.client(first.api_key).chat.completions.create(
            model=DEMO_CHAT_MODEL, messages=[{"role": "user", "content": "Still here?"}]
        )
        assert completion.choices[0].message.content
    finally:
        second.stage.gateway.close()


def test_without_demo_an_empty_server_refuses_every_key(tmp_path: Path) -> None:
    with GatewayProcess(tmp_path / "empty") as gateway:
        gateway.start()
        stage = Stage(gateway, None)
        for key in ("sk-anything-at-all-0000", "sk-" + "a" * 48):
            with pytest.raises(openai.AuthenticationError) as caught:
                stage.client(key).chat.completions.create(
                    model=DEMO_CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}]
                )
            assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
        assert "Demo API key" not in gateway.read_banner()
