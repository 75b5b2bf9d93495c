"""Every table Tollway stores. Money columns are integer nano-USD (see billing/money.py).

Times are stored as integer milliseconds since the Unix epoch: the same on SQLite and
PostgreSQL, cheap to compare on the hot path, and exact.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    # 1.0 == 1_000_000; applied on top of the model price.
    Column("price_multiplier_ppm", BigInteger, nullable=False, default=1_000_000),
    # null: every priced model; otherwise a list of model names this group may use.
    Column("allowed_models", JSON, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("email", String(255), nullable=True),
    Column("role", String(16), nullable=False, default="user"),  # user | admin
    Column("status", String(16), nullable=False, default="active"),  # active | disabled
    Column("group_id", Integer, ForeignKey("groups.id"), nullable=False),
    # Committed balance. Money in flight is held by leases (see billing/leases.py).
    Column("balance_nano", BigInteger, nullable=False, default=0),
    Column("created_at_ms", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    # sha256 hex of the whole key; the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),  # e.g. "sk-AbCd"
    Column("key_suffix", String(8), nullable=False),  # e.g. "a1b2"
    Column("status", String(16), nullable=False, default="active"),  # active | disabled
    Column("expires_at_ms", BigInteger, nullable=True),
    # null: unlimited (draws on the owner's balance only).
    Column("spend_limit_nano", BigInteger, nullable=True),
    Column("spent_nano", BigInteger, nullable=False, default=0),
    Column("allowed_models", JSON, nullable=True),  # null: whatever the group allows
    Column("allowed_ips", JSON, nullable=True),  # null: any; else list of IPs / CIDRs
    Column("environment", String(16), nullable=False, default="prod"),  # test | prod
    Column("project", String(128), nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("type", String(32), nullable=False),  # openai | demo
    Column("base_url", String(512), nullable=False, default=""),
    # Fernet token of the upstream credential, keyed by the configured secret key.
    Column("credential_encrypted", Text, nullable=True),
    Column("models", JSON, nullable=False),  # names clients may request through it
    Column("model_mapping", JSON, nullable=False),  # requested name -> upstream name
    Column("groups", JSON, nullable=False),  # group names allowed to use it
    Column("priority", Integer, nullable=False, default=0),
    Column("weight", Integer, nullable=False, default=1),
    Column("status", String(16), nullable=False, default="enabled"),  # enabled | disabled
    Column("created_at_ms", BigInteger, nullable=False),
)

model_prices = Table(
    "model_prices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(128), nullable=False, unique=True),
    # nano-USD per 1M tokens, i.e. the USD price per 1M tokens times 1e9.
    Column("input_nano_per_mtok", BigInteger, nullable=False, default=0),
    Column("output_nano_per_mtok", BigInteger, nullable=False, default=0),
    Column("cached_input_nano_per_mtok", BigInteger, nullable=True),  # null: same as input
    Column("per_request_nano", BigInteger, nullable=True),  # set: flat price per request
    Column("created_at_ms", BigInteger, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    # The request id for charges; an admin operation id for top-ups and adjustments.
    Column("request_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # charge | topup | adjust
    Column("user_id", Integer, nullable=False, index=True),
    Column("key_id", Integer, nullable=True),
    # Signed change to the user's balance: charges are negative.
    Column("amount_nano", BigInteger, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_at_ms", BigInteger, nullable=False),
    UniqueConstraint("request_id", "kind", name="uq_ledger_request_kind"),
)

leases = Table(
    "leases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("holder", String(128), nullable=False, index=True),  # one gateway process
    Column("account_kind", String(8), nullable=False),  # user | key
    Column("account_id", Integer, nullable=False),
    Column("granted_nano", BigInteger, nullable=False),
    Column("used_nano", BigInteger, nullable=False, default=0),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("released", Boolean, nullable=False, default=False),
    Index("ix_leases_account", "account_kind", "account_id", "released"),
)

request_logs = Table(
    "request_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("user_id", Integer, nullable=True),
    Column("user_name", String(64), nullable=True),
    Column("key_id", Integer, nullable=True),
    Column("key_name", String(128), nullable=True),
    Column("key_masked", String(32), nullable=True),
    Column("key_environment", String(16), nullable=True),
    Column("key_project", String(128), nullable=True),
    Column("endpoint", String(64), nullable=False),
    Column("inbound_format", String(16), nullable=False),
    Column("requested_model", String(128), nullable=True),
    Column("upstream_model", String(128), nullable=True),
    Column("channel_id", Integer, nullable=True),
    Column("channel_name", String(128), nullable=True),
    Column("is_stream", Boolean, nullable=False, default=False),
    Column("status_code", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("usage_source", String(16), nullable=False, default="none"),  # reported | estimated | none
    Column("cost_nano", BigInteger, nullable=False, default=0),
    Column("charged", Boolean, nullable=False, default=False),
    Column("charge_reason", Text, nullable=False, default=""),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("ttft_ms", Integer, nullable=True),
    Column("client_ip", String(64), nullable=True),
    Index("ix_request_logs_time", "created_at_ms"),
    Index("ix_request_logs_user_time", "user_id", "created_at_ms"),
    Index("ix_request_logs_key_time", "key_id", "created_at_ms"),
    Index("ix_request_logs_model_time", "requested_model", "created_at_ms"),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_suffix", String(8), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

# A single row; every config write bumps it so running processes rebuild their snapshot.
config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
