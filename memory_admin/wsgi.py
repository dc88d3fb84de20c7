"""WSGI entry point: the API and the dashboard's pages are served by gunicorn's workers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")

application = get_wsgi_application()
