"""The finished file reaches a local export storage moved into place, not copied byte by
byte (an S3 storage reads it: ``tests/test_s3_storage.py``), with the checksum and size of
what is stored, whether they were taken while it was written or read back afterwards."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from exports import services
from exports.services import export_job_create, export_job_run, exports_storage
from exports.tests.factories import org_with_cases

pytestmark = pytest.mark.django_db


@pytest.fixture
def folders(settings, tmp_path):
    settings.EXPORTS_TMP_DIR = str(tmp_path / "tmp")
    Path(settings.EXPORTS_TMP_DIR).mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports"), "base_url": None},
        },
    }
    return tmp_path


def test_a_local_storage_gets_the_finished_file_moved_in_with_the_usual_permissions(folders, monkeypatch):
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    inodes: list[int] = []
    named_temporary_file = tempfile.NamedTemporaryFile

    def recorded(*args, **kwargs):  # the export's temporary file
        handle = named_temporary_file(*args, **kwargs)
        inodes.append(os.fstat(handle.fileno()).st_ino)
        return handle

    monkeypatch.setattr(services.tempfile, "NamedTemporaryFile", recorded)
    done = export_job_run(job_id=str(job.pk))

    assert done is not None and done.status == "completed"
    stored = Path(exports_storage().path(done.storage_key))
    assert [stored.stat().st_ino] == inodes  # moved, not copied
    assert stored.stat().st_mode & 0o777 == 0o644  # FILE_UPLOAD_PERMISSIONS, not the temp file's 0o600
    assert stored.read_bytes().count(b"\r\n") == done.row_count + 1
    assert list((folders / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("dataset", "format", "hashed_as_written"),
    [
        ("cases", "csv", True),
        ("cases", "jsonl", True),
        ("cases", "parquet", True),
        ("cases", "xlsx", False),  # the ZIP goes back to write headers: read back
        ("board_report", "pdf", None),
    ],
)
def test_the_recorded_checksum_and_size_are_the_stored_files(folders, monkeypatch, dataset, format, hashed_as_written):
    read_back: list[Path] = []
    hash_file = services._hash_file
    monkeypatch.setattr(services, "_hash_file", lambda path: read_back.append(path) or hash_file(path))
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset=dataset, format=format, enqueue_run=False)
    done = export_job_run(job_id=str(job.pk))

    assert done is not None and done.status == "completed"
    content = Path(exports_storage().path(done.storage_key)).read_bytes()
    assert hashlib.sha256(content).hexdigest() == done.sha256 and len(content) == done.file_size_bytes > 0
    if hashed_as_written is not None:
        assert (read_back == []) is hashed_as_written


@pytest.mark.parametrize("format", ["csv", "jsonl", "parquet", "xlsx"])
def test_every_temporary_file_of_an_export_is_in_the_export_temporary_folder(folders, monkeypatch, format):
    """The file, the PostgreSQL parts and the XLSX sheets alike: a worker's spare disk is
    where ``EXPORTS_TMP_DIR`` says, not wherever ``TMPDIR`` happens to be."""
    opened: list[tuple[str, object]] = []
    for name in ("TemporaryFile", "NamedTemporaryFile"):
        real = getattr(tempfile, name)

        def recorded(*args, real=real, name=name, **kwargs):  # the real file, its folder noted
            opened.append((name, kwargs.get("dir")))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, recorded)
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format=format, enqueue_run=False)
    done = export_job_run(job_id=str(job.pk))

    assert done is not None and done.status == "completed"
    assert ("NamedTemporaryFile", str(folders / "tmp")) in opened  # the export's own file
    if format == "xlsx":
        assert ("TemporaryFile", str(folders / "tmp")) in opened  # its sheet
    assert {folder for _, folder in opened} == {str(folders / "tmp")}, opened
    assert list((folders / "tmp").iterdir()) == []
