"""Builds a Snapshot from the store in one read transaction."""

from __future__ import annotations

import ipaddress
import logging

from sqlalchemy import Engine, select

from tollway.accounts.credentials import CredentialBox, CredentialError
from tollway.accounts.keys import mask
from tollway.snapshot.model import ChannelView, GroupView, KeyView, PriceView, Snapshot, UserView
from tollway.store.db import read_config_version
from tollway.store.tables import api_keys, channels, groups, model_prices, users

log = logging.getLogger("tollway.snapshot")


def build_snapshot(engine: Engine, box: CredentialBox) -> Snapshot:
    with engine.connect() as conn:
        version = read_config_version(conn)
        group_rows = conn.execute(select(groups)).mappings().all()
        user_rows = conn.execute(select(users)).mappings().all()
        key_rows = conn.execute(select(api_keys)).mappings().all()
        price_rows = conn.execute(select(model_prices)).mappings().all()
        channel_rows = conn.execute(select(channels).where(channels.c.status == "enabled")).mappings().all()

    groups_by_id = {
        row["id"]: GroupView(
            id=row["id"],
            name=row["name"],
            price_multiplier_ppm=row["price_multiplier_ppm"],
            allowed_models=None if row["allowed_models"] is None else frozenset(row["allowed_models"]),
        )
        for row in group_rows
    }
    users_by_id = {
        row["id"]: UserView(
            id=row["id"], name=row["name"], status=row["status"], role=row["role"], group=groups_by_id[row["group_id"]]
        )
        for row in user_rows
    }
    keys_by_hash = {row["key_hash"]: _key_view(row, users_by_id[row["user_id"]]) for row in key_rows}
    prices = {
        row["model"]: PriceView(
            model=row["model"],
            input_nano_per_mtok=row["input_nano_per_mtok"],
            output_nano_per_mtok=row["output_nano_per_mtok"],
            cached_input_nano_per_mtok=row["cached_input_nano_per_mtok"],
            per_request_nano=row["per_request_nano"],
        )
        for row in price_rows
    }
    channel_views = tuple(_channel_view(row, box) for row in channel_rows)
    routes: dict[tuple[str, str], list[ChannelView]] = {}
    for channel in channel_views:
        for group_name in channel.groups:
            for model in channel.models:
                routes.setdefault((group_name, model), []).append(channel)
    return Snapshot(
        version=version,
        keys_by_hash=keys_by_hash,
        prices=prices,
        channels=channel_views,
        routes={k: tuple(sorted(v, key=lambda c: -c.priority)) for k, v in routes.items()},
        served_models=frozenset(m for c in channel_views for m in c.models),
    )


def _key_view(row: dict, user: UserView) -> KeyView:  # type: ignore[type-arg]
    networks = None
    if row["allowed_ips"]:
        networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in row["allowed_ips"])
    return KeyView(
        id=row["id"],
        name=row["name"],
        user=user,
        masked=mask(row["key_prefix"], row["key_suffix"]),
        status=row["status"],
        expires_at_ms=row["expires_at_ms"],
        spend_limit_nano=row["spend_limit_nano"],
        allowed_models=None if row["allowed_models"] is None else frozenset(row["allowed_models"]),
        allowed_networks=networks,
        environment=row["environment"],
        project=row["project"],
    )


def _channel_view(row: dict, box: CredentialBox) -> ChannelView:  # type: ignore[type-arg]
    credential = None
    if row["credential_encrypted"]:
        try:
            credential = box.decrypt(row["credential_encrypted"])
        except CredentialError:
            # Keep serving the other channels; this one will be refused upstream and say why.
            log.error("channel %s: credential cannot be decrypted with the configured secret key", row["name"])
    return ChannelView(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        base_url=row["base_url"].rstrip("/"),
        credential=credential,
        models=frozenset(row["models"]),
        model_mapping=dict(row["model_mapping"] or {}),
        groups=frozenset(row["groups"]),
        priority=row["priority"],
        weight=row["weight"],
    )
