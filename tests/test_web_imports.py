"""A web process (gunicorn importing the WSGI application and every URL's view) loads none
of the libraries only the export worker needs: each is tens of megabytes in every web
process, and a tenth of a second or more of its start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER_ONLY = ("pyarrow", "openpyxl", "weasyprint", "xlsxwriter", "import_export")

PROBE = f"""
import json, sys
from config.wsgi import application
from django.urls import get_resolver

def views(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            views(pattern.url_patterns)
        else:
            pattern.callback

views(get_resolver().url_patterns)
print(json.dumps(sorted(name for name in {WORKER_ONLY!r} if name in sys.modules)))
"""


def test_a_web_process_loads_no_worker_only_library():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
