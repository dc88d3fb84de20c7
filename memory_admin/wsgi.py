"""WSGI entry point: the API and the dashboard's pages are served by the web server's workers.

The hot lane (memory_admin.api.hot) answers the agents' per-step requests; everything else goes to Django,
whose API requests take a short middleware chain (memory_admin.api.handler).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")
django.setup(set_prefix=False)

from memory_admin.api import query  # noqa: E402  (needs the settings loaded)
from memory_admin.api.handler import SplitWSGIHandler  # noqa: E402
from memory_admin.api.hot.lane import HotLane  # noqa: E402
from memory_admin.api.hot.routes import hot_routes  # noqa: E402

application = HotLane(SplitWSGIHandler(), hot_routes())
query.documented()  # read the schema's query parameters now, not on the first request that has some
