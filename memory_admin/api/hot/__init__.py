"""The hot lane: the few API requests every agent step makes, served without the framework's per-request work.

An agent appends a message, appends an event, reads its context and saves a checkpoint at every step. Through
Django's handler and DRF each such request cost ~1.7 ms of CPU before a byte of its own work (middleware,
URL resolving, DRF's request wrapper, content negotiation, serializer machinery, the renderer), several times
what the work itself costs. The hot lane is a WSGI layer in front of Django (`memory_admin.wsgi`) that
serves exactly those requests, when they are plain, with the same services, selectors, errors, headers and
logs, and hands everything else to Django untouched:

- A route (`HotRoute`) names the Django URL it shadows and the method; `memory_admin.api.hot.lane` checks at
  start-up that a sample path of each resolves to that URL, and takes the view's name and `Allow` header
  from Django, so both lanes log, count and answer alike.
- A request is plain when it has a JSON body (for writes) that parses quickly and has exactly the shape the
  route expects, an API key in the usual header, an `Accept` that takes JSON, and no query string (a read
  route may name the parameters it reads: each at most once, as its view accepts them). Anything
  else (a malformed body, an unusual header, a field the route does not know) goes to Django, which words
  every refusal; the hot lane never has to.
- An Idempotency-Key is honoured with the same Redis records as Django's decorator
  (memory_admin.api.idempotency), so a retry may land in either lane: the lane claims the key, and completes
  or releases the claim; a key that already holds a record (a retry, a clash, one still in flight) goes to
  Django, which replays the first response or refuses.
- Authentication and rate counting are the same calls as Django's (`tenants_app.authentication.resolve_key`),
  made once: a request handed over after its key was checked carries the check along, so its rate window
  counts it once. Over its limit, or with an unknown key, a request is always handed over (Django answers
  429 or 401).
- Domain errors the services raise (404, 409, 412, 422, ...) are rendered here with the one error body
  (`memory_admin.api.errors.error_body`); a storage layer that is down is a 503, an unexpected failure a 500,
  exactly as Django's exception handler does.

The test suite drives the API through this lane (see conftest's agent client), so every API test covers it,
and `tests/api/test_hot_lane.py` checks that both lanes give the same answers to the same requests.
"""
