from sqlalchemy import Engine, select

from tests.admin.expect import config_version, gateway_error
from tollway.accounts.keys import hash_secret
from tollway.admin import tokens
from tollway.pipeline.errors import BAD_REQUEST, NOT_FOUND
from tollway.store.tables import admin_tokens


def test_token_lifecycle(engine: Engine) -> None:
    assert tokens.has_admin_tokens(engine) is False
    v0 = config_version(engine)
    token = tokens.create_admin_token(engine, "ops")
    assert token.startswith("tw-admin-")
    assert config_version(engine) == v0  # not part of the gateway snapshot
    assert tokens.has_admin_tokens(engine) is True
    assert tokens.verify_admin_token(engine, token) is True
    assert tokens.verify_admin_token(engine, token + "x") is False
    assert tokens.verify_admin_token(engine, "") is False

    [listed] = tokens.list_admin_tokens(engine)
    assert {k: listed[k] for k in ("name", "suffix")} == {"name": "ops", "suffix": token[-4:]}
    assert token not in repr(listed) and hash_secret(token) not in repr(listed)
    with engine.connect() as conn:
        assert conn.execute(select(admin_tokens.c.token_hash)).scalar_one() == hash_secret(token)

    tokens.delete_admin_token(engine, listed["id"])
    assert tokens.verify_admin_token(engine, token) is False
    assert tokens.has_admin_tokens(engine) is False
    with gateway_error(NOT_FOUND, param="token_id"):
        tokens.delete_admin_token(engine, listed["id"])
    with gateway_error(BAD_REQUEST, param="name"):
        tokens.create_admin_token(engine, "")
