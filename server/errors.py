"""Errors that carry a TF Serving status code from the point they are raised to the HTTP answer.

TF Serving's request path reports failures as a `tensorflow::Status` (a code and a message);
the REST layer turns the code into an HTTP status and the message into `{"error": "..."}`.
`ServingError` is that status here: raise it anywhere, the HTTP layer formats it.
"""

# TF Serving's mapping of canonical status codes to HTTP statuses
# (model_servers/http_server.cc: ToHTTPStatusCode).
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A failed request: a canonical status code name and a message for the client."""

    def __init__(self, code: str, message: str):
        if code not in HTTP_STATUS or code == "OK":
            raise ValueError(f"not an error code: {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def __repr__(self) -> str:
        return f"ServingError({self.code}, {self.message!r})"


class SignatureNotFound(ServingError):
    """A request named a signature the version does not have. Worded as TF Serving's predict_util.cc
    (FAILED_PRECONDITION 'Serving signature key "X" not found.', what gRPC Predict answers); its REST
    handler looks the signature up first and says it in its own words (rest/handlers.py)."""

    def __init__(self, signature_name: str):
        super().__init__("FAILED_PRECONDITION", f'Serving signature key "{signature_name}" not found.')
        self.signature_name = signature_name


def invalid_argument(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def failed_precondition(message: str) -> ServingError:
    return ServingError("FAILED_PRECONDITION", message)


def unavailable(message: str) -> ServingError:
    return ServingError("UNAVAILABLE", message)


def resource_exhausted(message: str) -> ServingError:
    return ServingError("RESOURCE_EXHAUSTED", message)


def internal(message: str) -> ServingError:
    return ServingError("INTERNAL", message)


def unimplemented(message: str) -> ServingError:
    return ServingError("UNIMPLEMENTED", message)
