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
