"""Middleware of the SCIM service's chain (settings.SCIM_MIDDLEWARE)."""


def no_length_without_content(get_response):
    """No ``Content-Length`` on a 204 or a 304. CommonMiddleware gives every response one, and
    ``Content-Length: 0`` there is wrong: a 204 MUST NOT carry it, and a 304's would have to
    be the length of the representation it stands for (RFC 9110 §8.6). Listed before
    CommonMiddleware, so it sees the response after it."""

    def middleware(request):
        response = get_response(request)
        if response.status_code in (204, 304):
            del response["Content-Length"]
        return response

    return middleware
