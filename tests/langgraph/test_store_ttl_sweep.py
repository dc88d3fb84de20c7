"""The periodic sweep removes the LangGraph store items whose TTL ran out — in every tenant, in batches — and
nothing else; running it again removes nothing more. A read refreshes the TTL of every item it returns."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from conftest import World
from langgraph_app import store
from langgraph_app.models import StoreItem
from langgraph_app.store import Op
from langgraph_app.tasks import sweep_expired_store_items


def _put(world_tenant: object, namespace: list[str], key: str, ttl: float | None) -> None:
    store.run_batch(
        tenant=world_tenant,  # type: ignore[arg-type]
        ops=[Op("put", {"namespace": namespace, "key": key, "value": {"v": key}, "ttl": ttl})],
    )


def _age(minutes: float) -> None:
    """Move every item's clock back, as if `minutes` had passed."""
    for row in StoreItem.objects.all():
        StoreItem.objects.filter(pk=row.pk).update(
            expires_at=None if row.expires_at is None else row.expires_at - timedelta(minutes=minutes)
        )


def test_the_sweep_removes_only_expired_items_of_every_tenant(world: World) -> None:
    for tenant in (world.acme.tenant, world.outsider.tenant):
        _put(tenant, ["s"], "short", 1)
        _put(tenant, ["s"], "long", 60)
        _put(tenant, ["s"], "forever", None)
    _age(5)

    removed = store.sweep_expired(batch_size=1)  # several batches

    assert removed == 2
    left = set(StoreItem.objects.values_list("tenant__name", "key"))
    assert left == {(name, key) for name in ("acme", "globex") for key in ("long", "forever")}
    assert store.sweep_expired() == 0  # idempotent
    assert sweep_expired_store_items.apply().get() == 0  # the beat task runs the same sweep


def test_an_expired_item_is_invisible_before_the_sweep_and_a_new_put_starts_it_afresh(world: World) -> None:
    tenant = world.acme.tenant
    _put(tenant, ["s"], "k", 1)
    first = StoreItem.objects.get(key="k")
    _age(5)

    assert store.run_batch(tenant=tenant, ops=[Op("get", {"namespace": ["s"], "key": "k"})]) == [None]
    assert StoreItem.objects.filter(key="k").exists()  # still there until the sweep

    _put(tenant, ["s"], "k", None)
    again = StoreItem.objects.get(key="k")
    assert again.pk == first.pk and again.created_at > first.created_at and again.expires_at is None


def test_a_search_refreshes_the_ttl_of_every_item_it_returns(world: World) -> None:
    tenant = world.acme.tenant
    for key in ("a", "b", "c"):
        _put(tenant, ["s"], key, 10)
    _put(tenant, ["s"], "none", None)
    _age(8)
    before = timezone.now()

    found = store.run_batch(tenant=tenant, ops=[Op("search", {"namespace_prefix": ["s"], "limit": 10})])[0]

    assert {item["key"] for item in found} == {"a", "b", "c", "none"}
    expiries = dict(StoreItem.objects.values_list("key", "expires_at"))
    assert expiries["none"] is None
    for key in ("a", "b", "c"):
        expiry = expiries[key]
        assert expiry is not None and expiry >= before + timedelta(minutes=10)
