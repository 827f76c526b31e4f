"""Production from the outside: the deploy check, refusing to start, gunicorn serving the
app with its static files and security headers, and logs that say what they were about."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import os
import re
import runpy
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django.contrib.admin
import pytest
from django.conf import settings
from django.utils import timezone

from config.logs import JsonFormatter, log_context, log_context_current, logging_config
from exports.services import export_job_create, export_job_run
from exports.tasks import run_export
from exports.tests.factories import org_with_cases
from organizations.models import Role
from organizations.tests.factories import member
from scheduling.models import ScheduleRun
from scheduling.tasks import execute_run
from scheduling.tests.factories import make_schedule

ROOT = Path(__file__).resolve().parent.parent
SECRET = "k3Y-" + "x7Qp2vR9sT4wZ8bN6mC1dF5gH0jL3" * 2  # 62 characters, many distinct
ADMIN_CSS = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "css" / "base.css"


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The documented production environment (docs/deploy.md), on a throwaway SQLite file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "DJANGO_SETTINGS", "SECURE_", "CSRF_", "LOG_", "WEB_CONCURRENCY", "PORT"))
        and k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "DATABASE_URL", "FORWARDED_ALLOW_IPS")
        # The browser tests set this in the test process; a deployment never has it.
        and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="False",
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="reports.example.com,127.0.0.1",
        SITE_URL="https://reports.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    )
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# --- settings ---------------------------------------------------------------------------


def test_check_deploy_is_clean_with_the_documented_production_environment(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_production_turns_https_redirects_off(tmp_path):
    env = production_env(tmp_path, SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0")
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W008" in result.stderr and "security.W004" in result.stderr


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (("SECRET_KEY",), "DEBUG=False needs SECRET_KEY set in the environment."),
        (("SECRET_KEY", "ALLOWED_HOSTS"), "DEBUG=False needs SECRET_KEY and ALLOWED_HOSTS set in the environment."),
    ],
)
def test_debug_false_without_secret_key_refuses_to_start_with_one_line(tmp_path, unset, message):
    env = production_env(tmp_path)
    for name in unset:
        del env[name]
    result = manage(env, "check")
    assert result.returncode != 0
    assert result.stderr.strip() == f"dossier: configuration error: {message}"


def test_unknown_log_format_refuses_to_start_with_one_line(tmp_path):
    result = manage(production_env(tmp_path, LOG_FORMAT="xml"), "check")
    assert result.returncode != 0
    assert result.stderr.strip() == "dossier: configuration error: LOG_FORMAT must be one of text, json, not 'xml'."


SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n, None) for n in "
    "['SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
    "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', "
    "'X_FRAME_OPTIONS']}))"
)


def settings_of(env: dict[str, str]) -> dict[str, Any]:
    result = manage(env, "shell", "-v", "0", "-c", SHOW)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_settings_default_to_https_and_follow_the_environment(tmp_path):
    assert settings_of(production_env(tmp_path)) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
        "CSRF_TRUSTED_ORIGINS": ["https://reports.example.com"],
        "X_FRAME_OPTIONS": "DENY",
    }
    chosen = production_env(
        tmp_path,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="true",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        CSRF_TRUSTED_ORIGINS="https://admin.example.com,https://reports.example.com",
    )
    assert settings_of(chosen) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "CSRF_TRUSTED_ORIGINS": ["https://reports.example.com", "https://admin.example.com"],
        "X_FRAME_OPTIONS": "DENY",
    }


def test_development_defaults_stay_on_plain_http(tmp_path):
    env = production_env(tmp_path, DEBUG="True")
    shown = settings_of(env)
    assert shown["SECURE_SSL_REDIRECT"] is False and shown["SECURE_HSTS_SECONDS"] == 0
    assert shown["SESSION_COOKIE_SECURE"] is False and shown["CSRF_COOKIE_SECURE"] is False


# --- gunicorn ---------------------------------------------------------------------------


def gunicorn_settings(monkeypatch, cpus: int, **env: str) -> dict[str, Any]:
    for name in ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_conf_reads_port_and_web_concurrency(monkeypatch):
    conf = gunicorn_settings(monkeypatch, cpus=2)
    assert conf["bind"] == ["0.0.0.0:8000"]
    assert conf["workers"] == 5  # 2 x 2 cores + 1
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert "logconfig_dict" not in conf  # text: gunicorn's own plain lines
    assert gunicorn_settings(monkeypatch, cpus=16)["workers"] == 8  # capped
    conf = gunicorn_settings(
        monkeypatch, cpus=16, PORT="5000", WEB_CONCURRENCY="3", FORWARDED_ALLOW_IPS="10.0.0.0/8", LOG_FORMAT="json"
    )
    assert conf["bind"] == ["0.0.0.0:5000"] and conf["workers"] == 3
    assert conf["forwarded_allow_ips"] == "10.0.0.0/8"
    assert conf["logconfig_dict"]["loggers"]["gunicorn.access"] == {"handlers": ["console"], "propagate": False}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[str]:
    """``gunicorn config.wsgi`` as the Procfile runs it; yields its base URL once it answers."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi"],
            cwd=ROOT,
            env={**env, "PORT": str(port), "WEB_CONCURRENCY": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/v1/health/", timeout=5).close()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):  # starting, or a busy machine
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_gunicorn_serves_the_app_its_static_files_and_https_headers(tmp_path):
    log = tmp_path / "gunicorn.log"
    token = "eyJqb2IiOiJ4In0:1tSecretPart:signaturePart123"
    with gunicorn(production_env(tmp_path, LOG_FORMAT="json"), log) as base:
        # the proxy's probe over plain HTTP is not redirected; everything else goes to HTTPS
        status, _, body = fetch(f"{base}/api/v1/health/")
        assert status == 200 and json.loads(body) == {"status": "ok", "database": "ok", "broker": "ok"}
        status, headers, _ = fetch(f"{base}/admin/login/")
        assert status == 301 and headers["Location"] == f"https://127.0.0.1:{base.rsplit(':', 1)[1]}/admin/login/"

        # behind the TLS proxy (a trusted local address saying X-Forwarded-Proto: https)
        status, headers, body = fetch(f"{base}/admin/login/", **{"X-Forwarded-Proto": "https"})
        assert status == 200 and b'name="csrfmiddlewaretoken"' in body
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "; Secure" in headers["Set-Cookie"] and headers["Set-Cookie"].startswith("csrftoken=")

        status, headers, body = fetch(f"{base}/static/admin/css/base.css", **{"X-Forwarded-Proto": "https"})
        assert status == 200 and body == ADMIN_CSS.read_bytes()
        assert headers["Content-Type"].startswith("text/css")

        status, _, _ = fetch(f"{base}/d/{token}/", **{"X-Forwarded-Proto": "https"})
        assert status == 404
        fetch(f"{base}/admin/login/?next=/d/{token}/", **{"X-Forwarded-Proto": "https"})
    # JSON lines only, the access log among them, and no download token in any access line
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    access = [line["message"] for line in lines if line["logger"] == "gunicorn.access"]
    assert any('"GET /static/admin/css/base.css HTTP/1.1" 200' in message for message in access)
    assert any('"GET /d/…/ HTTP/1.1" 404' in message for message in access)
    assert any("/admin/login/?next=/d/…/" in message for message in access)
    assert not any("SecretPart" in message for message in access)
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)


def test_static_files_are_served_by_the_app(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == ADMIN_CSS.read_bytes()


# --- logs -------------------------------------------------------------------------------


@pytest.fixture
def log_format():
    """Configure logging as ``LOG_FORMAT`` would; put the settings' configuration back after."""

    def configure(name: str) -> None:
        logging.config.dictConfig(logging_config(log_format=name, level="INFO"))

    yield configure
    logging.config.dictConfig(settings.LOGGING)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_log_context_nests_and_is_gone_after_the_block():
    with log_context(organization="acme", job_id="j1"):
        with log_context(run_id="r1", job_id="j2", schedule_id=None):
            assert log_context_current() == {"organization": "acme", "job_id": "j2", "run_id": "r1"}
        assert log_context_current() == {"organization": "acme", "job_id": "j1"}
    assert log_context_current() == {}


def test_json_formatter_writes_the_context_and_the_exception_text(log_format, capsys):
    log_format("json")
    with log_context(organization="acme", task="exports.tasks.run_export"):
        try:
            raise ValueError("bad row 7")
        except ValueError:
            logging.getLogger("dossier.test").exception("export %s failed", "j1")
    logging.getLogger("dossier.test").warning("outside")
    first, second = json_lines(capsys.readouterr().out)
    assert first["message"] == "export j1 failed" and first["level"] == "ERROR" and first["logger"] == "dossier.test"
    assert first["organization"] == "acme" and first["task"] == "exports.tasks.run_export"
    assert first["exception"].startswith("Traceback") and first["exception"].endswith("ValueError: bad row 7")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["timestamp"])
    assert second == {
        "timestamp": second["timestamp"],
        "level": "WARNING",
        "logger": "dossier.test",
        "message": "outside",
    }


def test_json_formatter_never_lets_the_context_replace_the_message():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "real", None, None)
    record.log_context = {"message": "forged", "organization": "acme"}
    assert json.loads(JsonFormatter().format(record))["message"] == "real"


@pytest.mark.django_db
def test_an_export_logs_json_lines_with_its_job_and_organization(log_format, capsys, settings):
    org, _ = org_with_cases(slug="globex")
    log_format("json")
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    progress = logging.getLogger("dossier.progress")
    done = export_job_run(job_id=str(job.pk), on_progress=lambda rows: progress.info("wrote %d rows", rows))
    assert done is not None and done.status == "completed"

    failing = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    settings.EXPORTS_TMP_DIR = str(settings.BASE_DIR / "var" / "no-such-folder-for-test")
    run_export(str(failing.pk))
    failing.refresh_from_db()
    assert failing.status == "failed" and failing.error.startswith("FileNotFoundError")

    lines = json_lines(capsys.readouterr().out)
    wrote = [line for line in lines if line["logger"] == "dossier.progress"]
    assert wrote and all(line["job_id"] == str(job.pk) and line["organization"] == "globex" for line in wrote)
    assert "task" not in wrote[0]
    (failed,) = [line for line in lines if line["message"] == f"export {failing.pk} failed"]
    assert failed["level"] == "ERROR" and failed["logger"] == "exports.services"
    assert failed["job_id"] == str(failing.pk) and failed["organization"] == "globex"
    assert failed["task"] == "exports.tasks.run_export"
    assert "FileNotFoundError" in failed["exception"]


@pytest.mark.django_db
def test_a_schedule_run_logs_its_run_schedule_job_and_task(log_format, capsys, settings):
    org, _ = org_with_cases(slug="initech")
    schedule = make_schedule(org, member(org, Role.OFFICER, username="owner"), format="csv", filters={})
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now(), trigger="manual")
    settings.EXPORTS_TMP_DIR = str(settings.BASE_DIR / "var" / "no-such-folder-for-test")
    log_format("json")
    assert execute_run(str(run.pk)) == "failed"
    lines = json_lines(capsys.readouterr().out)
    (failed,) = [line for line in lines if line["logger"] == "exports.services" and line["level"] == "ERROR"]
    assert failed["task"] == "scheduling.tasks.execute_run"
    assert failed["run_id"] == str(run.pk) and failed["schedule_id"] == schedule.pk
    assert failed["organization"] == "initech"
    run.refresh_from_db()
    assert failed["job_id"] == str(run.export_job_id)


@pytest.mark.django_db
def test_text_log_format_stays_plain(log_format, capsys, settings):
    org, _ = org_with_cases()
    failing = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    settings.EXPORTS_TMP_DIR = str(settings.BASE_DIR / "var" / "no-such-folder-for-test")
    log_format("text")
    run_export(str(failing.pk))
    failing.refresh_from_db()
    assert failing.status == "failed" and failing.error.startswith("FileNotFoundError")
    captured = capsys.readouterr()
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} ERROR exports\.services: export {failing.pk} failed", first
    )
    assert "Traceback" in captured.err and not captured.err.lstrip().startswith("{")


def test_log_format_json_from_the_environment_writes_json_to_stdout(tmp_path):
    code = "import logging; logging.getLogger('dossier.check').warning('hello %s', 'world')"
    result = manage(production_env(tmp_path, LOG_FORMAT="json"), "shell", "-v", "0", "-c", code)
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert line["message"] == "hello world" and line["logger"] == "dossier.check" and line["level"] == "WARNING"
    text = manage(production_env(tmp_path), "shell", "-v", "0", "-c", code)
    assert text.stdout == "" and text.stderr.strip().endswith("WARNING dossier.check: hello world")
