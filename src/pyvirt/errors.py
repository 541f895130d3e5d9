"""The one error tree of pyvirt.

Every error a user can see is a ``PyvirtError``. Each class has a stable
``code`` (carried over the API as JSON and back into the same class by the
client), the HTTP status the API answers with, and the CLI prints
``error: <message>`` and exits non-zero. A message names the object, the field
or path, the cause in words and what to do::

    PyvirtError
     +-- InvalidArgument        bad input: XML, names, sizes, options  (400)
     |    +-- XMLSyntaxError    malformed XML, with line and column
     |    +-- UnsupportedConfig an element/attribute/value pyvirt does not handle
     |    +-- MethodNotAllowed  an API path asked with a method it lacks (405)
     |    +-- RequestTooLarge   an API request body over the limit     (413)
     +-- NotFound               no such domain/network/pool/...        (404)
     +-- AlreadyExists          duplicate name or uuid                 (409)
     +-- OperationInvalid       not legal in the object's state        (409)
     +-- OperationBusy          another job holds the object's lock    (409)
     +-- HostError              the host cannot do it (KVM, memory)    (422)
     +-- QemuError              QEMU failed; carries QEMU's own words  (500)
     +-- ConnectionFailed       client cannot reach the daemon         (-)
     +-- Unauthorized           no or a wrong token over TCP           (401)
     +-- Forbidden              the token's scope does not allow it    (403)
     +-- RateLimited            too many failed logins from one peer   (429)
     +-- InternalError          a bug: please report                   (500)
"""
from __future__ import annotations


class PyvirtError(Exception):
    """Root of every error pyvirt reports to a user."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message}\n{self.detail}"
        return self.message


class InvalidArgument(PyvirtError):
    code = "invalid-argument"
    http_status = 400


class XMLSyntaxError(InvalidArgument):
    code = "xml-syntax"


class UnsupportedConfig(InvalidArgument):
    code = "unsupported-config"


class MethodNotAllowed(InvalidArgument):
    """An API path exists but not with this HTTP method (the API's own 405)."""

    code = "method-not-allowed"
    http_status = 405


class RequestTooLarge(InvalidArgument):
    """An API request body over the daemon's limit (the API's own 413)."""

    code = "request-too-large"
    http_status = 413


class NotFound(PyvirtError):
    code = "not-found"
    http_status = 404


class AlreadyExists(PyvirtError):
    code = "already-exists"
    http_status = 409


class OperationInvalid(PyvirtError):
    code = "operation-invalid"
    http_status = 409


class OperationBusy(OperationInvalid):
    code = "operation-busy"


class HostError(PyvirtError):
    code = "host-error"
    http_status = 422


class QemuError(PyvirtError):
    code = "qemu-error"
    http_status = 500


class ConnectionFailed(PyvirtError):
    code = "connection-failed"
    http_status = 503


# --- remote access (pyvirt+tls://): tokens and their scopes ---------------------------------
class Unauthorized(PyvirtError):
    """A request over TCP without a token, or with one the daemon does not know (revoked, mistyped)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(PyvirtError):
    """The token is valid but its scope (read-only) does not allow this request."""

    code = "forbidden"
    http_status = 403


class RateLimited(PyvirtError):
    """Too many failed authentications from one peer: refused until the window passes."""

    code = "rate-limited"
    http_status = 429


class InternalError(PyvirtError):
    code = "internal-error"
    http_status = 500


_BY_CODE: dict[str, type[PyvirtError]] = {}


def _register(cls: type[PyvirtError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(PyvirtError)


def from_dict(data: dict[str, str]) -> PyvirtError:
    """Rebuild an error sent by the daemon as JSON (the client raises it)."""
    cls = _BY_CODE.get(data.get("code", ""), PyvirtError)
    return cls(data.get("message", "unknown error"), detail=data.get("detail"))
