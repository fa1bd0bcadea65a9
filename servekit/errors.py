"""Typed errors that carry their HTTP meaning.

Every error the server reports to a client is a `ServekitError`; one middleware turns it into
TorchServe's `{"code", "type", "message"}` body. `type_name` is the TorchServe exception class
name that clients see.
"""

from __future__ import annotations


class ServekitError(Exception):
    status: int = 500
    type_name: str = "InternalServerException"

    def __init__(self, message: str, status: int | None = None, type_name: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type_name is not None:
            self.type_name = type_name

    def to_body(self) -> dict[str, object]:
        return {"code": self.status, "type": self.type_name, "message": self.message}


class BadRequestError(ServekitError):
    status, type_name = 400, "BadRequestException"


class InvalidModelError(ServekitError):
    status, type_name = 400, "InvalidModelException"


class InvalidKeyError(ServekitError):
    status, type_name = 400, "InvalidKeyException"


class DownloadArchiveError(ServekitError):
    status, type_name = 400, "DownloadArchiveException"


class InvalidModelVersionError(ServekitError):
    status, type_name = 403, "InvalidModelVersionException"


class ResourceNotFoundError(ServekitError):
    status, type_name = 404, "ResourceNotFoundException"

    def __init__(self, message: str = "Requested resource is not found, please refer to API document."):
        super().__init__(message)


class ModelNotFoundError(ServekitError):
    status, type_name = 404, "ModelNotFoundException"


class ModelVersionNotFoundError(ServekitError):
    status, type_name = 404, "ModelVersionNotFoundException"


class MethodNotAllowedError(ServekitError):
    status, type_name = 405, "MethodNotAllowedException"

    def __init__(self, message: str = "Requested method is not allowed, please refer to API document."):
        super().__init__(message)


class RequestTimeoutError(ServekitError):
    status, type_name = 408, "RequestTimeoutException"


class ConflictError(ServekitError):
    status, type_name = 409, "ConflictStatusException"


class InternalServerError(ServekitError):
    status, type_name = 500, "InternalServerException"


class ServiceUnavailableError(ServekitError):
    status, type_name = 503, "ServiceUnavailableException"


class ConfigError(Exception):
    """Invalid configuration; the server refuses to start with this message."""
