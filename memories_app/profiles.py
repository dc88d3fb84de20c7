"""Writes to a user's profile (preferences, facts, activity), whose facts the user's memories follow through an
outbox (memories_app.background drains it)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from memories_app.models import OutboxOperation, ProfileFactOutbox, UserProfile
from memories_app.services import StaleVersion, clean_content, clean_metadata, clean_user_id
from memory_admin.errors import Conflict, PreconditionFailed, ValidationFailed
from memory_admin.live import publish_on_commit, tenant_group
from memory_admin.redis_guard import queue_task
from tenants_app.models import Tenant

MAX_FACT_KEY_CHARS = 200


# Creating the row, then locking it, is tried this many times before the caller is told to try again.
_PROFILE_LOCK_ATTEMPTS = 3


def _locked_profile(tenant: Tenant, user_id: str) -> UserProfile:
    """The user's profile, created (at version 0) when there is none, locked until the caller's commit.

    The insert is skipped when the row exists, and the row can be gone by the time it is locked: an erasure
    approval that deleted it committed in between. As after any erasure (a session id can be used again
    too), the person's profile may then be created afresh, so create-then-lock is tried again: that second
    insert holds its own row. Conflict (409, safe to retry) should the row vanish every time.
    """
    for _ in range(_PROFILE_LOCK_ATTEMPTS):
        UserProfile.objects.bulk_create([UserProfile(tenant=tenant, user_id=user_id, version=0)], ignore_conflicts=True)
        profile = UserProfile.objects.select_for_update().filter(tenant=tenant, user_id=user_id).first()
        if profile is not None:
            return profile
    raise Conflict("The profile was deleted while this change was being made; send it again.")


@transaction.atomic
def update_profile(
    *,
    tenant: Tenant,
    user_id: str,
    expected_versions: set[int] | None,
    must_exist: bool = False,
    preferences: dict[str, Any] | None = None,
    facts: dict[str, str | None] | None = None,
    record_interaction: bool = False,
) -> UserProfile:
    """Create or change a user's profile; its version goes up by one.

    `preferences` and `facts` are merged key by key (null removes a key). Every added, changed or removed
    fact is written to the outbox in the same transaction, so the user's memories follow exactly once even
    if a worker or Redis is lost. `record_interaction` counts one interaction and marks the user active.
    StaleVersion (412) when If-Match names another version; PreconditionFailed (412) when the user has no profile
    and If-Match names versions or `must_exist` (If-Match: *); ValidationFailed for bad facts or ids. An erasure
    approved meanwhile (it deletes the profile) does not fail the change: the profile is created again (unless
    If-Match said it had to exist).
    """
    clean_user_id(user_id)
    for key, value in (facts or {}).items():
        if not key.strip() or len(key) > MAX_FACT_KEY_CHARS:
            raise ValidationFailed(
                "The request did not validate.",
                details={"fields": {"facts": [f"Fact keys are 1-{MAX_FACT_KEY_CHARS} characters."]}},
            )
        if value is not None:
            clean_content(value, field=f"facts.{key}")
    profile = _locked_profile(tenant, user_id)
    # Version 0 is the placeholder inserted just now (and rolled back with these errors): no If-Match matches a
    # profile that does not exist (RFC 9110), not even "0", which is never given out.
    if must_exist and profile.version == 0:
        raise PreconditionFailed(
            "If-Match: * matches an existing profile, and this user has none.", details={"current_version": None}
        )
    if expected_versions is not None and profile.version == 0:
        raise PreconditionFailed(
            "If-Match names a version of the profile, and this user has none.", details={"current_version": None}
        )
    if expected_versions is not None and profile.version not in expected_versions:
        raise StaleVersion(profile)
    if preferences:
        merged = {**profile.preferences, **preferences}
        kept = {key: value for key, value in merged.items() if value is not None}
        profile.preferences = clean_metadata(kept, field="preferences")
    changes: list[ProfileFactOutbox] = []
    profile.version += 1
    for key, value in (facts or {}).items():
        if value is None and key in profile.facts:
            del profile.facts[key]
            operation = OutboxOperation.DELETE
        elif value is not None and profile.facts.get(key) != value:
            profile.facts[key] = value
            operation = OutboxOperation.UPSERT
        else:
            continue
        changes.append(
            ProfileFactOutbox(
                tenant=tenant,
                user_id=user_id,
                fact_key=key,
                operation=operation,
                content=value or "",
                profile_version=profile.version,
            )
        )
    if record_interaction:
        profile.interaction_count += 1
        profile.last_active_at = timezone.now()
    profile.updated_at = timezone.now()
    profile.save()
    ProfileFactOutbox.objects.bulk_create(changes)
    if changes:
        from memories_app.tasks import drain_profile_outbox

        # Best-effort, like every doorbell here: the beat task drains the outbox every 30 s anyway, and a
        # broker that is down must not turn a stored change into a 500 (whose retry would apply it again).
        transaction.on_commit(lambda: queue_task(drain_profile_outbox), robust=True)
    publish_on_commit(
        [tenant_group(tenant.pk)],
        {"type": "profile.updated", "tenant": str(tenant.pk), "profile": profile.pk, "version": profile.version},
    )
    return profile
