"""Upstreams through the management API: keys go in encrypted and never come back out."""

from __future__ import annotations

from relay.models import Upstream

SECRET = "sk-upstream-secret-0123456789"


def _create(client, **body):
    payload = {"name": "oa", "type": "openai", "key": f"{SECRET}\n  sk-second-key  \n", "models": "gpt-4o,gpt-4o-mini",
               "groups": ["default"], "priority": 5, "weight": 3, "model_mapping": {"gpt-4o": "gpt-4o-2024-08-06"}}
    return client.post("/api/channel/", payload | body, format="json")


def test_create_stores_keys_encrypted_and_never_returns_them(admin, client_for, default_group):
    client = client_for(admin)
    r = _create(client)
    assert r.status_code == 201, r.json()
    data = r.json()["data"]
    assert data["key_count"] == 2 and data["models"] == ["gpt-4o", "gpt-4o-mini"] and data["groups"] == ["default"]
    upstream = Upstream.objects.get(pk=data["id"])
    assert upstream.get_keys() == [SECRET, "sk-second-key"]
    assert SECRET not in upstream.keys_encrypted
    for response in (r, client.get("/api/channel/"), client.get(f"/api/channel/{upstream.pk}")):
        assert SECRET not in response.content.decode()


def test_update_keeps_keys_unless_new_ones_are_given(admin, client_for, default_group):
    client = client_for(admin)
    upstream_id = _create(client).json()["data"]["id"]
    r = client.put("/api/channel/", {"id": upstream_id, "priority": 9, "key": "", "status": 2}, format="json")
    assert r.json()["data"]["priority"] == 9 and r.json()["data"]["status"] == "disabled"
    assert Upstream.objects.get(pk=upstream_id).get_keys() == [SECRET, "sk-second-key"]
    client.put("/api/channel/", {"id": upstream_id, "key": "sk-new"}, format="json")
    assert Upstream.objects.get(pk=upstream_id).get_keys() == ["sk-new"]


def test_bad_upstreams_are_refused(admin, client_for, default_group):
    client = client_for(admin)
    assert _create(client, key="").status_code == 400  # keys are required
    assert _create(client, type="nope").status_code == 400
    assert _create(client, type="azure").json()["message"] == "This provider type needs a base URL."
    assert _create(client, groups=["ghost"]).json()["message"] == "Unknown groups: ghost"
    assert _create(client, base_url="not a url").status_code == 400
    assert Upstream.objects.filter(type="openai").count() == 0
    assert client.delete("/api/channel/999").status_code == 404
