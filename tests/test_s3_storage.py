"""Exports on S3 (a local S3 server, moto): files land in the bucket, downloads redirect to a
short-lived presigned URL that serves the same bytes."""

from __future__ import annotations

import hashlib
import urllib.parse
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from exports.services import export_job_run
from exports.tests.factories import ExportJobFactory, org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from tests.smtp import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(settings, monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="dossier-test")
    from config.settings import _exports_storage

    storage = _exports_storage("s3://dossier-test/exports")
    storage["OPTIONS"].update(
        endpoint_url=endpoint,
        access_key="test",
        secret_key="test",
        region_name="us-east-1",
        signature_version="s3v4",
        addressing_style="path",
    )
    settings.STORAGES = {**settings.STORAGES, "exports": storage}
    yield boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    server.stop()


def test_export_to_s3_and_presigned_download(s3):
    org, _ = org_with_cases()
    job = export_job_run(job_id=str(ExportJobFactory(organization=org, format="csv").pk))
    assert job is not None and job.status == "completed"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dossier-test")["Contents"]]
    assert keys == [f"exports/{job.storage_key}"]
    client = APIClient()
    client.force_authenticate(member(org, Role.VIEWER))
    response = client.get(f"/api/v1/orgs/{org.slug}/exports/{job.pk}/download/")
    assert response.status_code == 302
    url = response["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["X-Amz-Expires"] == ["300"]  # short-lived, signed
    assert job.file_name in query["response-content-disposition"][0]
    with urllib.request.urlopen(url, timeout=10) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == job.sha256
