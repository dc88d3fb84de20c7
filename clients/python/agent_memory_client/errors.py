"""The service's one error shape, as an exception."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A 4xx/5xx answer: `status`, the stable `code`, a `message` for people and `details` for recovery."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.request_id = request_id

    @classmethod
    def from_response(cls, status: int, body: Any) -> ApiError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(status, "http_error", f"HTTP {status}")
        return cls(
            status,
            str(error.get("code", "http_error")),
            str(error.get("message", "")),
            error.get("details") or {},
            error.get("request_id"),
        )


class NotFoundError(ApiError):
    pass
