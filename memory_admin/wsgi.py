"""WSGI entry point: the API and the dashboard's pages are served by the web server's workers."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
django.setup(set_prefix=False)

from memory_admin.api.handler import SplitWSGIHandler  # noqa: E402  (needs the settings loaded)

application = SplitWSGIHandler()
