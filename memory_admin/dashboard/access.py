"""Who may open which dashboard page. A logged-in user without the role gets the 403 page, never a redirect loop."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from tenants_app.roles import Role, has_role, is_staff_member


def staff_page(role: Role | None = None) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Require a logged-in staff member, and `role` when given (support pages need no more than a role)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not is_staff_member(request.user) or (role is not None and not has_role(request.user, role)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        # Read by the refusal suite (test_dashboard_refusals), which walks every dashboard URL.
        wrapped.staff_role = role  # type: ignore[attr-defined]
        return wrapped

    return decorator
