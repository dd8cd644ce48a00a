"""Relay fixtures: funded keys and the bootstrapped demo upstream (the live server is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from accounts.services import user_adjust_quota
from tokens.services import token_create


@pytest.fixture
def funded_key(make_user):
    """(user, sk- key) with a balance of 10,000,000 quota on top of the trial credit."""

    def make(username: str = "dev", balance: int = 10_000_000, **token_fields):
        user = make_user(username)
        if balance:
            user_adjust_quota(user=user, amount=balance)
        _token, key = token_create(user=user, name=token_fields.pop("name", "main"),
                                   unlimited_quota=token_fields.pop("unlimited_quota", True), **token_fields)
        return user, key

    return make


@pytest.fixture
def bootstrap_demo(transactional_db):
    from django.core.management import call_command

    call_command("bootstrap", stdout=open("/dev/null", "w"))
