"""The HTTP floor: what the web server and the workload's client cost with no application.

``bench/scim_load.py`` serves this two-byte WSGI app with the same server command as the
console and times POSTs of a create-sized body over one keep-alive connection, so every
run states how fast the machine was at that moment (on a shared 2-core machine the same
run moves by a factor of two within an hour).
"""


def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response(
        "201 Created", [("Content-Type", "application/scim+json"), ("Content-Length", "2")]
    )
    return [b"{}"]
