"""Fuzzes every operation of the served document with schemathesis.

Usage: conformance.py OPENAPI_JSON REPORT_DIR, with KUBEOP_URL (the server's base URL) and
KUBEOP_TOKEN (an admin token) in the environment. Fails on a 5xx, a status, content type, header
or body the document does not describe, a request the schemas refuse that the server accepts, an
endpoint that ignores a missing token, and a deleted resource that is still served.

Random ids only ever reach "not found", so a tenant, a project and an app are made first and
offered to the id parameters half of the time (`schemathesis.toml` holds the fixed settings).
The seed is fixed so that a failure reproduces; the JUnit report names each failing case.
"""

import json
import os
import subprocess
import sys
import urllib.request

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
]

# Which made resource each id parameter may take, by the paths it appears in. DELETE operations
# get random ids only, so that the made resources live through the run.
BINDINGS = [
    ("^/v1/tenants/\\{id\\}", {"path.id": "tenants"}),
    ("^/v1/invoices/", {"path.tenantID": "tenants"}),
    ("^/v1/projects/\\{id\\}$", {"path.id": "projects"}),
    ("^/v1/apps/\\{id\\}$", {"path.id": "apps"}),
    ("^/v1/projects$", {"query.tenantID": "tenants", "body.tenantID": "tenants", "body.ID": "projects"}),
    ("^/v1/apps$", {"query.projectID": "projects", "body.projectID": "projects", "body.ID": "apps"}),
    ("^/v1/tenants$", {"body.ID": "tenants"}),
    ("^/v1/jwt/project$", {"body.ProjectID": "projects"}),
    ("^/v1/usage/snapshot$", {"query.tenantID": "tenants"}),
    ("^/v1/cronjobs$", {"query.projectID": "projects", "body.projectID": "projects"}),
    ("^/v1/cronjobs/\\{projectID\\}", {"path.projectID": "projects"}),
]


def call(url: str, token: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def config(url: str, token: str) -> str:
    """The fixed settings, and dictionaries of ids that exist."""
    tenant = call(url, token, "POST", "/v1/tenants", {"name": "fuzz"})["id"]
    project = call(url, token, "POST", "/v1/projects", {"tenantID": tenant, "name": "web"})["id"]
    app = call(url, token, "POST", "/v1/apps", {"projectID": project, "name": "web", "image": "docker.io/library/nginx:1.25"})["id"]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml"), encoding="utf-8") as file:
        text = file.read()
    text += "\n[dictionaries]\n"
    for name, value in (("tenants", tenant), ("projects", project), ("apps", app)):
        text += f'{name} = {{ values = ["{value}"] }}\n'
    for path, parameters in BINDINGS:
        # A literal TOML string keeps the regex's backslashes.
        text += f"\n[[operations]]\ninclude-path-regex = '{path}'\n"
        text += 'include-method = ["GET", "POST", "PUT", "PATCH"]\n'
        bound = ", ".join(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in parameters.items())
        text += f"parameters = {{ {bound} }}\n"
    return text


def main(document: str, reports: str) -> int:
    url = os.environ["KUBEOP_URL"]
    token = os.environ["KUBEOP_TOKEN"]
    config_file = os.path.join(reports, "schemathesis.toml")
    with open(config_file, "w", encoding="utf-8") as file:
        file.write(config(url, token))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        config_file,
        "run",
        document,
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        os.environ.get("KUBEOP_FUZZ_EXAMPLES", "40"),
        "--seed",
        os.environ.get("KUBEOP_FUZZ_SEED", "20261129"),
        # One worker: a run is then the same sequence each time, and no other worker deletes a
        # tenant under a project that a stateful sequence has just made.
        "--workers",
        "1",
        "--request-timeout",
        "10",
        # Without a cluster these answer their documented 503, which the server-error check
        # counts as a fault; tests/api/kube.rs, platform_kube.rs and cronjobs.rs cover them
        # against the fake API server.
        "--exclude-path-regex",
        "^/v1/kubeconfigs/|^/v1/platform/(bootstrap|status|autoscale)$|^/v1/cronjobs/[^/]+/[^/]+/run$",
        "--continue-on-failure",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        reports,
    ]
    # Schemathesis keeps a cache in its working directory: the report directory, not the tree.
    return subprocess.run(command, check=False, cwd=reports).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
