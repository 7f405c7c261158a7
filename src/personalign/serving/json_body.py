"""A request's JSON body, read no further than the server's size limit, every failure an OpenAI-shaped 4xx."""

import json

from starlette.requests import ClientDisconnect, Request

from .http_errors import ApiError


async def read_json(request: Request, limit: int):
    """The request's JSON, read no further than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except ClientDisconnect:  # nobody will read the answer; end the request quietly
        raise ApiError(400, "the client closed the connection before sending the whole body") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON ({error})") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than this server accepts ({limit} bytes)",
                    code="request_too_large")
