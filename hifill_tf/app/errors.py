"""The one error shape of the server's JSON answers: IOPaint's.

IOPaint answers errors with ``{"error": ..., "detail": ..., "body": ..., "errors": ...}`` and
its page shows `errors`; clients of earlier versions of this server read `detail`. Both carry
the same one-line reason.
"""

from http import HTTPStatus


class RequestError(ValueError):
    """A request the server refuses: `status` (4xx) and a one-line reason."""

    def __init__(self, message, status=400):
        super().__init__(" ".join(str(message).split()))
        self.status = status


def error_content(status, message):
    message = " ".join(str(message).split())
    return {"error": HTTPStatus(status).phrase, "detail": message, "body": "", "errors": message}


def error_response(status, message, headers=None):
    from starlette.responses import JSONResponse

    return JSONResponse(error_content(status, message), status_code=status, headers=headers)
