"""The relay's snapshot of upstreams: each enabled upstream with its groups and usable keys, read in a few queries;
stored keys decrypted once per stored blob, and never with another secret than the one they were sealed with."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.groups import group_default
from billing.models import UserGroup
from relay.key_vault import KeyVaultError, key_fingerprint, keys_decrypt, keys_encrypt
from relay.models import Upstream, UpstreamStatus
from relay.snapshots import _upstreams_load
from relay.upstreams import upstream_save


@pytest.mark.django_db
def test_each_enabled_upstream_comes_with_its_own_groups_and_usable_keys():
    default = group_default()
    vip = UserGroup.objects.create(name="vip")
    both = upstream_save(name="both", type="openai", keys=["sk-a", "sk-b"], served_models=["gpt-4o"],
                         groups=[default.name, vip.name])
    upstream_save(name="none", type="openai", keys=["sk-c"], served_models=["gpt-4o"], groups=[])
    upstream_save(name="off", type="openai", keys=["sk-d"], served_models=["gpt-4o"], groups=[vip.name],
                  status=UpstreamStatus.DISABLED)
    Upstream.objects.filter(pk=both.pk).update(disabled_keys={key_fingerprint("sk-a"): "refused"})
    for number in range(20):
        upstream_save(name=f"more{number}", type="openai", keys=[f"sk-{number}"], served_models=["m"],
                      groups=[default.name])
    with CaptureQueriesContext(connection) as queries:
        loaded = {u.name: u for u in _upstreams_load()}
    assert len(queries) == 2  # the upstreams and their groups' names, not a query per upstream
    assert set(loaded) == {"both", "none"} | {f"more{number}" for number in range(20)}
    assert loaded["both"].groups == {"default", "vip"} and loaded["none"].groups == frozenset()
    assert loaded["both"].keys == ("sk-b",) and loaded["more7"].keys == ("sk-7",)
    assert loaded["more3"].groups == {"default"}


def test_stored_keys_are_decrypted_with_the_secret_they_were_sealed_with(settings):
    settings.UPSTREAM_KEY_SECRET = "first-secret"
    blob = keys_encrypt(["sk-one", "sk-two"])
    assert keys_decrypt(blob) == ["sk-one", "sk-two"]
    assert keys_decrypt(blob) == ["sk-one", "sk-two"]  # again: from the process's copy
    keys_decrypt(blob).append("changed by a caller")
    assert keys_decrypt(blob) == ["sk-one", "sk-two"]
    settings.UPSTREAM_KEY_SECRET = "another-secret"
    with pytest.raises(KeyVaultError):
        keys_decrypt(blob)  # not served from the copy made with the first secret
    assert keys_decrypt(keys_encrypt(["sk-new"])) == ["sk-new"]
