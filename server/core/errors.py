"""HTTP-shaped errors raised anywhere below the web layer.

Every layer raises these; the SN and DN turn them into a JSON body with the
same status, and the SN's DN client turns a DN's answer back into one, so a
404 found deep in a DN reaches the client as a 404.
"""


class HttpError(Exception):
    status = 500

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message or self.__class__.__name__

    def to_json(self) -> dict:
        # never a "statusCode" key: h5pyd treats one in a body as an error
        return {"error": self.message, "status": self.status}


class BadRequest(HttpError):
    status = 400


class Unauthorized(HttpError):
    status = 401


class Forbidden(HttpError):
    status = 403


class NotFound(HttpError):
    status = 404


class MethodNotAllowed(HttpError):
    status = 405


class Conflict(HttpError):
    status = 409


class Gone(HttpError):
    status = 410


class PreconditionFailed(HttpError):
    """A conditional write lost a race (the object changed since it was read)."""
    status = 412


class TooLarge(HttpError):
    status = 413


class ServerError(HttpError):
    status = 500


class Unavailable(HttpError):
    status = 503


class BadGateway(HttpError):
    """Storage gave something unusable: a stored object that cannot be decoded (damaged
    or truncated at rest). Not the client's fault and not transient, so neither 4xx nor 503."""
    status = 502


class InsufficientStorage(HttpError):
    """The storage is full (POSIX ENOSPC/EDQUOT): nothing was written."""
    status = 507


_BY_STATUS = {cls.status: cls for cls in HttpError.__subclasses__()}


def error_for(status: int, message: str = "") -> HttpError:
    """The HttpError for a status code (used to re-raise a DN's answer)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = HttpError(message)
        err.status = status
        return err
    return cls(message)
