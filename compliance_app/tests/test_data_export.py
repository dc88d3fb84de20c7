"""Data export (right of access): an archive with exactly the person's data, per layer, audited, expiring."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from compliance_app import services
from compliance_app.export import build_archive
from compliance_app.models import AuditEntry, ExportRequest
from compliance_app.tasks import build_export, purge_erasure, sweep_exports
from compliance_app.tests.people import fill_every_layer
from conftest import World, logged_in

pytestmark = pytest.mark.django_db

ALICE = "alice-7f3a9c"
BOB = "bob-2c81de"


def _export(world: World, user_id: str = ALICE, agent: Any = None) -> str:
    filed = (agent or world.acme).client.post("/api/v1/export-requests", {"user_id": user_id}, format="json")
    assert filed.status_code == 201, filed.content
    assert filed.json()["status"] == "pending"
    build_export(filed.json()["id"])  # what the worker runs once the filing commits
    return str(filed.json()["id"])


def _unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_an_export_holds_exactly_the_persons_data_and_nothing_of_another_person_or_tenant(
    world: World, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fill_every_layer(world, ALICE, "ALICE-MARK")
        fill_every_layer(world, BOB, "BOB-MARK")
        # The same user id in another tenant is another person.
        fill_every_layer(world, ALICE, "OUTSIDER-MARK", agent=world.outsider)
    export_id = _export(world)

    detail = world.acme.client.get(f"/api/v1/export-requests/{export_id}").json()
    assert detail["status"] == "ready", detail
    response = world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    files = _unzip(response.content)

    manifest = json.loads(files.pop("manifest.json"))
    assert set(files) == {
        f"{layer}.json"
        for layer in (
            "sessions",
            "events",
            "operations",
            "checkpoints",
            "langgraph",
            "langgraph_store",
            "memories",
            "memory_history",
            "profile",
            "redis",
            "audit",
        )
    }
    assert manifest["request"] == export_id and manifest["generated_at"]
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
        assert len(json.loads(files[entry["name"]])) == entry["rows"]
    everything = b"".join(files.values()).decode()
    assert "BOB-MARK" not in everything and BOB not in everything
    assert "OUTSIDER-MARK" not in everything
    layers = {name.removesuffix(".json"): json.loads(body) for name, body in files.items()}
    assert [session["session_id"] for session in layers["sessions"]] == [f"{ALICE}-s1"]
    # Payloads decoded, not ciphertext: the message the agent stored is there as JSON.
    assert any("ALICE-MARK my card ends 4242" in json.dumps(event["payload"]) for event in layers["events"])
    assert layers["checkpoints"][0]["state"] == {"note": "ALICE-MARK"}
    assert [row["channel_values"] for row in layers["langgraph"]] == [{"seat": "ALICE-MARK chose the aisle"}]
    assert sorted((row["namespace"], row["value"]["text"]) for row in layers["langgraph_store"]) == [
        ([ALICE], "ALICE-MARK formal"),
        (["users", ALICE, "prefs"], "ALICE-MARK aisle"),
    ]
    assert layers["operations"][0]["params"] == {"to": "ALICE-MARK"}
    assert {memory["content"] for memory in layers["memories"]} == {
        "ALICE-MARK prefers window seats",
        "ALICE-MARK asked about refunds",
    } | {memory["content"] for memory in layers["memories"] if memory["source"] == "profile"}
    assert any(row.get("facts") == {"city": "ALICE-MARK lives in Porto"} for row in layers["profile"])
    assert any("ALICE-MARK" in json.dumps(row["value"]) for row in layers["redis"])
    assert "export_filed" in {entry["action"] for entry in layers["audit"]}
    assert detail["manifest"]["counts"]["sessions"] == 1
    assert ALICE not in json.dumps(detail)


def test_every_step_of_an_export_is_audited_without_the_persons_id(world: World) -> None:
    export_id = _export(world)
    world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive")

    entries = AuditEntry.objects.filter(export__pk=export_id).order_by("id")
    assert [entry.action for entry in entries] == [
        "export_filed",
        "export_started",
        "export_generated",
        "export_downloaded",
    ]
    assert entries[0].actor.startswith("api-key:")
    assert all(ALICE not in json.dumps(entry.details) for entry in entries)
    assert ExportRequest.objects.get(pk=export_id).downloads == 1


@pytest.mark.parametrize("accept", ["application/zip", "application/octet-stream", "application/*;q=0.5", "*/*"])
def test_the_archive_is_served_to_an_accept_that_takes_a_zip(world: World, accept: str) -> None:
    export_id = _export(world)

    response = world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive", HTTP_ACCEPT=accept)

    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/zip" and response.content.startswith(b"PK")


def test_an_accept_that_refuses_a_zip_is_a_406(world: World) -> None:
    export_id = _export(world)

    for accept in ("text/html", "application/zip;q=0"):
        response = world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive", HTTP_ACCEPT=accept)
        assert response.status_code == 406, accept
    assert ExportRequest.objects.get(pk=export_id).downloads == 0


def test_a_head_on_the_archive_answers_its_headers_without_counting_or_auditing_a_download(world: World) -> None:
    export_id = _export(world)
    url = f"/api/v1/export-requests/{export_id}/archive"

    head = world.acme.client.head(url)
    got = world.acme.client.get(url)

    assert head.status_code == 200 and head.content == b""
    for header in ("Content-Type", "Content-Length", "Content-Disposition", "X-Archive-SHA256"):
        assert head[header] == got[header], header
    assert ExportRequest.objects.get(pk=export_id).downloads == 1
    assert AuditEntry.objects.filter(export__pk=export_id, action="export_downloaded").count() == 1
    assert world.outsider.client.head(url).status_code == 404


def test_another_tenant_cannot_see_or_download_the_export(world: World) -> None:
    export_id = _export(world)

    assert world.outsider.client.get(f"/api/v1/export-requests/{export_id}").status_code == 404
    assert world.outsider.client.get(f"/api/v1/export-requests/{export_id}/archive").status_code == 404
    assert world.outsider.client.get("/api/v1/export-requests").json()["results"] == []
    assert not AuditEntry.objects.filter(export__pk=export_id, action="export_downloaded").exists()


def test_an_archive_is_a_409_until_ready_and_a_410_once_expired_and_swept(world: World) -> None:
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": ALICE}, format="json").json()
    early = world.acme.client.get(f"/api/v1/export-requests/{filed['id']}/archive")
    assert early.status_code == 409
    build_export(filed["id"])
    ExportRequest.objects.filter(pk=filed["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert world.acme.client.get(f"/api/v1/export-requests/{filed['id']}/archive").status_code == 410
    assert sweep_exports()["expired"] == 1
    export = ExportRequest.objects.get(pk=filed["id"])
    assert export.status == "expired" and export.archive is None
    assert export.manifest["counts"]  # the manifest (no personal data) stays as the record of what was sent
    gone = world.acme.client.get(f"/api/v1/export-requests/{filed['id']}/archive")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "expired"


def test_building_an_export_twice_is_harmless(world: World) -> None:
    export_id = _export(world)
    first = ExportRequest.objects.get(pk=export_id).archive_sha256

    build_export(export_id)

    assert ExportRequest.objects.get(pk=export_id).archive_sha256 == first
    assert AuditEntry.objects.filter(export__pk=export_id, action="export_generated").count() == 1


def test_a_crashed_export_is_rebuilt_by_the_sweep_after_its_lease(world: World) -> None:
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": ALICE}, format="json").json()
    assert services.claim_export(export_id=filed["id"], worker="worker:dead") is not None
    build_export(filed["id"])  # the lease is held: nothing happens
    assert ExportRequest.objects.get(pk=filed["id"]).status == "running"

    ExportRequest.objects.filter(pk=filed["id"]).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert sweep_exports()["requeued"] == 1
    build_export(filed["id"])  # what the re-queued message runs

    assert ExportRequest.objects.get(pk=filed["id"]).status == "ready"


def test_erasing_the_person_withdraws_their_export_at_once(world: World) -> None:
    export_id = _export(world)
    erasure = services.file_erasure(
        tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )

    services.approve_erasure(request_id=erasure.pk, decided_by="staff:ann")

    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "expired" and export.archive is None
    assert world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive").status_code == 410


def test_an_export_filed_while_the_persons_approved_erasure_is_carried_out_fails_and_holds_none_of_their_data(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fill_every_layer(world, ALICE, "ALICE-MARK")
    erasure = services.file_erasure(
        tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    services.approve_erasure(request_id=erasure.pk, decided_by="staff:ann")  # the purge is still queued
    assert world.acme.client.get("/api/v1/memories", {"user_id": ALICE}).json()["results"] == []

    export_id = _export(world)

    detail = world.acme.client.get(f"/api/v1/export-requests/{export_id}").json()
    assert detail["status"] == "failed" and "erasure" in detail["error"], detail
    assert ExportRequest.objects.get(pk=export_id).archive is None
    assert world.acme.client.get(f"/api/v1/export-requests/{export_id}/archive").status_code == 409
    # Once the erasure is verified, an export is built again: of what is held about them now, nothing.
    purge_erasure(str(erasure.pk))
    later = _export(world)
    assert world.acme.client.get(f"/api/v1/export-requests/{later}").json()["status"] == "ready"
    files = _unzip(world.acme.client.get(f"/api/v1/export-requests/{later}/archive").content)
    assert "ALICE-MARK" not in b"".join(files.values()).decode()
    assert json.loads(files["memories.json"]) == []


def test_an_archive_being_built_when_the_persons_erasure_is_approved_holds_none_of_the_memories_it_hid(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fill_every_layer(world, ALICE, "ALICE-MARK")
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": ALICE}, format="json").json()
    export = services.claim_export(export_id=filed["id"], worker="worker:test")
    assert export is not None and export.claim_token is not None
    erasure = services.file_erasure(
        tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )

    def approved_meanwhile(layer: str, rows: int) -> None:
        if layer == "langgraph_store":  # the approval commits just before the builder reads the memories
            services.approve_erasure(request_id=erasure.pk, decided_by="staff:ann")

    archive, _ = build_archive(export, generated_at=timezone.now(), max_bytes=10**8, on_layer=approved_meanwhile)

    files = _unzip(archive)
    assert json.loads(files["memories.json"]) == [] and json.loads(files["memory_history.json"]) == []
    # What the worker does next: the export was withdrawn by the approval, so the archive is dropped.
    assert (
        services.finish_export(
            export_id=export.pk, archive=archive, manifest={}, worker="worker:test", claim=export.claim_token
        )
        is None
    )


@pytest.mark.parametrize("body", [{}, {"user_id": ""}, {"user_id": "a", "legal_basis": "because"}])
def test_a_malformed_export_request_is_refused_and_nothing_is_filed(world: World, body: dict[str, str]) -> None:
    response = world.acme.client.post("/api/v1/export-requests", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]
    assert not ExportRequest.objects.exists()


def test_compliance_staff_file_and_download_an_export_in_the_dashboard(world: World) -> None:
    client = logged_in(world.compliance)
    filed = client.post(
        "/compliance/exports/", {"tenant": world.acme.tenant.pk, "user_id": ALICE, "legal_basis": "gdpr_art_15"}
    )
    assert filed.status_code == 302
    export = ExportRequest.objects.get()
    build_export(str(export.pk))

    page = client.get(f"/compliance/exports/{export.pk}/")
    assert page.status_code == 200 and b'id="download"' in page.content
    download = client.post(f"/compliance/exports/{export.pk}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert "manifest.json" in _unzip(download.content)
    entry = AuditEntry.objects.get(export=export, action="export_downloaded")
    assert entry.actor == "staff:cora-compliance"


def test_support_staff_cannot_file_see_or_download_exports(world: World) -> None:
    export_id = _export(world)
    client = logged_in(world.support)

    assert client.get("/compliance/exports/").status_code == 403
    assert client.post("/compliance/exports/", {"tenant": world.acme.tenant.pk, "user_id": BOB}).status_code == 403
    assert client.get(f"/compliance/exports/{export_id}/").status_code == 403
    assert client.post(f"/compliance/exports/{export_id}/download/").status_code == 403
    assert ExportRequest.objects.count() == 1
    assert not AuditEntry.objects.filter(action="export_downloaded").exists()


def test_live_export_updates_are_for_compliance_staff_only() -> None:
    from memory_admin.dashboard.consumers import role_for
    from tenants_app.roles import Role

    assert role_for("export.updated") == Role.COMPLIANCE
    assert role_for("erasure.updated") == Role.COMPLIANCE
