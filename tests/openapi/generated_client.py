"""Generates a Python client from the served document with openapi-python-client and drives the
seed's flow with it: tenants, projects, apps, a project token, rates, usage and an invoice, the
platform endpoints, and the clean-up.

Usage: generated_client.py OPENAPI_JSON WORK_DIR, with KUBEOP_URL and KUBEOP_TOKEN (an admin
token) in the environment. Every call goes through the generated functions and models; a status
or body the client cannot parse fails the run.
"""

import datetime
import importlib
import os
import subprocess
import sys
from decimal import Decimal
from http import HTTPStatus


def generate(document: str, work: str) -> None:
    package = os.path.join(work, "kubeop_client")
    # No formatter runs after generation (ruff is not among the pinned tools).
    config = os.path.join(work, "generator.yaml")
    with open(config, "w", encoding="utf-8") as file:
        file.write("post_hooks: []\n")
    subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "openapi-python-client"),
            "generate",
            "--path",
            document,
            "--output-path",
            package,
            "--meta",
            "none",
            "--config",
            config,
            "--fail-on-warning",
        ],
        check=True,
    )
    sys.path.insert(0, work)


def expect(response, status: HTTPStatus, what: str):
    if response.status_code != status:
        raise AssertionError(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
    return response.parsed


def main(document: str, work: str) -> int:
    generate(document, work)
    client_module = importlib.import_module("kubeop_client")
    models = importlib.import_module("kubeop_client.models")

    def op(tag: str, name: str):
        return importlib.import_module(f"kubeop_client.api.{tag}.{name}")

    client = client_module.AuthenticatedClient(base_url=os.environ["KUBEOP_URL"], token=os.environ["KUBEOP_TOKEN"])
    ok, no_content = HTTPStatus.OK, HTTPStatus.NO_CONTENT

    # Tenants
    tenant = expect(op("tenants", "create_tenant").sync_detailed(client=client, body=models.CreateTenant(name="acme")), ok, "create tenant")
    assert tenant.name == "acme" and tenant.id.startswith("t_"), tenant
    listed = expect(op("tenants", "list_tenants").sync_detailed(client=client), ok, "list tenants")
    assert [t.id for t in listed] == [tenant.id], listed
    expect(op("tenants", "update_tenant").sync_detailed(client=client, body=models.UpdateTenant(id=tenant.id, name="acme-inc")), no_content, "rename tenant")
    assert expect(op("tenants", "get_tenant").sync_detailed(tenant.id, client=client), ok, "get tenant").name == "acme-inc"

    # Projects
    project = expect(
        op("projects", "create_project").sync_detailed(client=client, body=models.CreateProject(tenant_id=tenant.id, name="web")),
        ok,
        "create project",
    )
    assert project.namespace == "kubeop-acme-inc-web", project
    listed = expect(op("projects", "list_projects").sync_detailed(client=client, tenant_id=tenant.id), ok, "list projects")
    assert [p.id for p in listed] == [project.id], listed
    expect(op("projects", "patch_project").sync_detailed(client=client, body=models.UpdateProject(id=project.id, name="web-main")), no_content, "rename project")
    assert expect(op("projects", "get_project").sync_detailed(project.id, client=client), ok, "get project").name == "web-main"

    # Apps
    app = expect(
        op("apps", "create_app").sync_detailed(
            client=client,
            body=models.CreateApp(project_id=project.id, name="web", image="docker.io/library/nginx:1.25", host="web.local"),
        ),
        ok,
        "create app",
    )
    listed = expect(op("apps", "list_apps").sync_detailed(client=client, project_id=project.id), ok, "list apps")
    assert [a.id for a in listed] == [app.id], listed
    expect(op("apps", "update_app").sync_detailed(client=client, body=models.UpdateApp(id=app.id, image="docker.io/library/nginx:1.26")), no_content, "update app")
    assert expect(op("apps", "get_app").sync_detailed(app.id, client=client), ok, "get app").image == "docker.io/library/nginx:1.26"

    # The generated client refuses nothing by itself, so the server's 400 must parse as an error.
    refused = expect(op("tenants", "create_tenant").sync_detailed(client=client, body=models.CreateTenant(name="Not A Label")), HTTPStatus.BAD_REQUEST, "bad name")
    assert "name" in refused.error, refused

    # A project token
    token = expect(
        op("tokens", "mint_project_token").sync_detailed(client=client, body=models.MintProjectToken(project_id=project.id, ttl_minutes=60)),
        ok,
        "mint token",
    )
    assert token.token.count(".") == 2, token

    # Rates, usage and the invoice: 100 milli-CPU and 200 MiB for one hour at 0.01 and 0.001.
    now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    expect(
        op("billing", "put_rates").sync_detailed(
            tenant.id, client=client, body=models.PutRates(cpu_milli="0.01", mem_mib="0.001", effective_from="2000-01-01T00:00:00Z")
        ),
        no_content,
        "put rates",
    )
    ingested = expect(
        op("usage", "ingest_usage").sync_detailed(
            client=client,
            body=[models.Point(ts=now, tenant_id=tenant.id, cpu_milli=100, mem_mib=200)],
            idempotency_key="generated-client-1",
        ),
        ok,
        "ingest",
    )
    assert (ingested.accepted, ingested.buckets) == (1, 1), ingested
    snapshot = expect(op("usage", "usage_snapshot").sync_detailed(client=client, tenant_id=tenant.id), ok, "snapshot")
    assert snapshot.to_dict(), snapshot
    invoice = expect(op("billing", "get_invoice").sync_detailed(tenant.id, client=client, period=now.strftime("%Y-%m")), ok, "invoice")
    assert Decimal(str(invoice.subtotal)) == Decimal("1.20"), invoice.to_dict()
    expect(op("billing", "get_rates").sync_detailed(tenant.id, client=client), ok, "get rates")

    # The platform
    expect(op("platform", "get_policy").sync_detailed(client=client), ok, "get policy")
    plugins = expect(op("platform", "list_plugins").sync_detailed(client=client), ok, "list plugins")
    assert {p.to_dict()["slot"] for p in plugins} >= {"image-policy", "pricing"}, plugins
    expect(op("service", "healthz").sync_detailed(client=client), ok, "healthz")
    expect(op("service", "version").sync_detailed(client=client), ok, "version")

    # Clean up: deleting the tenant takes the rest with it.
    expect(op("apps", "delete_app").sync_detailed(app.id, client=client), no_content, "delete app")
    expect(op("projects", "delete_project").sync_detailed(project.id, client=client), no_content, "delete project")
    expect(op("tenants", "delete_tenant").sync_detailed(tenant.id, client=client), no_content, "delete tenant")
    gone = expect(op("tenants", "get_tenant").sync_detailed(tenant.id, client=client), HTTPStatus.NOT_FOUND, "deleted tenant")
    assert "not found" in gone.error, gone
    print("the generated client drove the seed flow")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
