"""Logging filters (console/settings.py LOGGING)."""

import logging


class PipelineAbortedEcho(logging.Filter):
    """Drop psycopg's "error ignored terminating <Pipeline>: pipeline aborted".

    When a statement of a pipeline fails (a unique violation on a create, answered 409),
    psycopg raises the error from inside the block, then finds the pipeline aborted on
    leaving it and logs that as a WARNING. The first error is the one raised and handled;
    the echo says nothing more. Any other psycopg message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("error ignored terminating") and message.endswith("pipeline aborted")
        )


# C0 and C1 controls, DEL, the line and paragraph separators and the bidirectional
# overrides: what a terminal or a log reader may take for a line break, an escape sequence
# or text in another order.
_CONTROLS = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029,
        *range(0x202A, 0x202F), *range(0x2066, 0x206A),  # bidirectional overrides
    )
}  # fmt: skip
_CONTROLS[ord("\\")] = "\\\\"  # a backslash doubled: "\\x0a" in a path is not an escape


class EscapedAccessLog(logging.Filter):
    """granian's access log writes the decoded request path and query as they came: a
    ``%0a`` in a URL started a forged line of the log, and ``%1b`` a terminal escape, from
    anyone, with no credential. Control characters are written as ``\\xNN`` instead (the
    rest of the line as granian formats it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {
                key: value.translate(_CONTROLS) if isinstance(value, str) else value
                for key, value in record.args.items()
            }
        return True


class OneLineDisallowedHost(logging.Filter):
    """Django logs a request whose Host is outside ALLOWED_HOSTS at ERROR with a whole
    traceback, echoing the Host twice: about 8 KB of log per request, which anyone can send.
    One WARNING line instead, the Host cut short and its control characters escaped (the
    client got its SCIM 400 or Django's page already)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > 300:
            message = message[:300] + "…"
        record.msg, record.args = message.translate(_CONTROLS), ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
