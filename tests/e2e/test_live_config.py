"""Config written while the server runs (through the admin services, or the CLI in another
process) takes effect within a second, without a restart: the server polls the config version
(every 0.1 s in these tests) and swaps in a new snapshot."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import openai

from tests.e2e.conftest import (
    CHANNEL,
    INPUT_USD,
    OUTPUT_USD,
    UPSTREAM_KEY,
    Stage,
    expected_cost,
    unique,
)
from tests.support.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS
from tollway.admin import channels, groups, keys, prices, users

LIVE_WITHIN_S = 1.0


def takes_effect(probe: Callable[[], bool]) -> float:
    """Seconds until `probe()` first holds, polling; fails after LIVE_WITHIN_S."""
    started = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed <= LIVE_WITHIN_S, f"the running server did not act on the change within {LIVE_WITHIN_S} s"
        time.sleep(0.02)


def answers(client: openai.OpenAI, model: str = "gpt-4o-mini") -> str:
    """ "ok", or the error code the gateway answered with."""
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": unique("live")}])
    except openai.APIStatusError as exc:
        return str(exc.code)
    return "ok"


def refusal_code(client: openai.OpenAI) -> str:
    """Authentication only, via the free model list, so probing charges nothing."""
    try:
        client.models.list()
    except openai.APIStatusError as exc:
        return str(exc.code)
    return "ok"


def cli(stage: Stage, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tollway", "--data-dir", str(stage.gateway.data_dir), *args],
        env=stage.gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_new_key_works_at_once(stage: Stage) -> None:
    users.create_user(stage.engine, "late-user", group="e2e", balance_usd="1")
    secret = keys.create_key(stage.engine, "late-user")["key"]
    client = stage.client(secret)
    takes_effect(lambda: answers(client) == "ok")


def test_disabled_key_stops_at_once_and_comes_back(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    assert answers(client) == "ok"

    keys.update_key(stage.engine, account.key_id, status="disabled")
    takes_effect(lambda: refusal_code(client) == "disabled_api_key")
    assert answers(client) == "disabled_api_key"

    keys.update_key(stage.engine, account.key_id, status="active")
    takes_effect(lambda: refusal_code(client) == "ok")
    assert answers(client) == "ok"


def test_price_change_applies_to_the_next_requests(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    model = "fake-model"
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "a"}])
    raw.parse()
    assert stage.log_row(raw.headers["X-Request-Id"])["cost_nano"] == expected_cost(PROMPT_TOKENS, COMPLETION_TOKENS)

    prices.set_price(stage.engine, model, input_usd_per_mtok="4", output_usd_per_mtok="16")
    try:
        changed_at = time.monotonic()
        # (10*4e9 + 5*16e9) * 1.5 / 1e6: twice the old cost.
        doubled = 2 * expected_cost(PROMPT_TOKENS, COMPLETION_TOKENS)
        while True:
            sent_at = time.monotonic() - changed_at
            assert sent_at <= LIVE_WITHIN_S, "requests sent a second after the change still had the old price"
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "b"}]
            )
            raw.parse()
            if stage.log_row(raw.headers["X-Request-Id"])["cost_nano"] == doubled:
                break
    finally:
        prices.set_price(stage.engine, model, input_usd_per_mtok=INPUT_USD, output_usd_per_mtok=OUTPUT_USD)


def test_added_channel_serves_a_waiting_model(stage: Stage) -> None:
    assert stage.fake is not None
    account = stage.account()
    client = stage.client(account.key)
    prices.set_price(stage.engine, "late-model", input_usd_per_mtok=INPUT_USD, output_usd_per_mtok=OUTPUT_USD)
    takes_effect(lambda: answers(client, "late-model") == "no_available_channel")

    channels.create_channel(
        stage.engine,
        stage.gateway.box,
        "late-channel",
        type="openai",
        base_url=stage.fake.base_url,
        credential=UPSTREAM_KEY,
        models=["late-model"],
        groups=["e2e"],
    )
    takes_effect(lambda: answers(client, "late-model") == "ok")
    raw = client.chat.completions.with_raw_response.create(
        model="late-model", messages=[{"role": "user", "content": "c"}]
    )
    raw.parse()
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert (row["channel_name"], row["error_code"], row["charged"]) == ("late-channel", None, True)

    channels.update_channel(stage.engine, stage.gateway.box, "late-channel", status="disabled")
    takes_effect(lambda: answers(client, "late-model") == "no_available_channel")


def test_group_and_user_changes_apply_at_once(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    groups.create_group(stage.engine, "tiny", allowed_models=["fake-model"])
    channels.update_channel(stage.engine, stage.gateway.box, CHANNEL, groups=["default", "e2e", "narrow", "tiny"])

    users.update_user(stage.engine, account.user, group="tiny")
    takes_effect(lambda: answers(client) == "model_not_in_group")
    assert answers(client, "fake-model") == "ok"

    users.update_user(stage.engine, account.user, status="disabled")
    takes_effect(lambda: refusal_code(client) == "user_disabled")


def test_cli_in_another_process_disables_a_key(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    assert answers(client) == "ok"

    cli(stage, "keys", "disable", str(account.key_id))
    takes_effect(lambda: refusal_code(client) == "disabled_api_key")

    cli(stage, "keys", "enable", str(account.key_id))
    takes_effect(lambda: refusal_code(client) == "ok")


def test_cli_topup_lets_an_empty_account_spend(stage: Stage) -> None:
    account = stage.account(balance_usd="0")
    client = stage.client(account.key)
    assert answers(client) == "insufficient_balance"

    out = cli(stage, "users", "topup", account.user, "1")
    assert account.user in out
    takes_effect(lambda: answers(client) == "ok")
