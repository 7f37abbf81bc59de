"""A username: an email address whose domain is written as it reads.

Django's ``validate_email`` accepts an internationalized domain by converting it to ASCII
(IDNA) first, and that conversion maps full-width letters to ASCII (``ｌｏｃａｌ.test`` is
``local.test``), drops invisible characters (a zero-width space, a soft hyphen) and folds
``ß`` to ``ss``. Uniqueness compares the text as written (``LOWER``), so such a spelling
would be a second account for the same mailbox as a console administrator's or another
provider's user. A domain that conversion changes is refused instead, with the spelling it
stands for; one it keeps (``münchen.de``) is accepted as written.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def validate_username(value: str) -> None:
    validate_email(value)
    domain = value.rpartition("@")[2]
    if domain.isascii():
        return
    try:
        canonical = domain.encode("idna").decode("idna")
    except UnicodeError:
        raise ValidationError("Enter a valid email address.", code="invalid") from None
    if canonical.lower() != domain.lower():
        raise ValidationError(
            f"its domain reads as {canonical!r}: write it that way.", code="noncanonical"
        )
