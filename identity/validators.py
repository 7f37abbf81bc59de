"""A username: an email address whose domain is written as it reads.

Django's ``validate_email`` accepts an internationalized domain by converting it to ASCII
first, and that conversion maps full-width letters to ASCII (``ｌｏｃａｌ.test`` is
``local.test``) and drops invisible characters (a soft hyphen, a combining grapheme
joiner). Uniqueness compares the text as written (``LOWER``), so such a spelling would be a
second account for the same mailbox as a console administrator's or another provider's
user. Domains are read by IDNA 2008 with UTS 46 (the ``idna`` package, non-transitional:
``straße.de`` is its own domain, as the registries have it), and one is accepted only in
one of its two canonical forms: Unicode (``münchen.de``, composed, lower-case but for ASCII
letters) or ASCII (``xn--mnchen-3ya.de``, any case). Anything else is refused, naming the
spelling it stands for. Only ASCII letters may differ in case because only their lowering
is the same in Python and in every database's ``LOWER`` (PostgreSQL lowers ``İ`` to ``i``,
Python to ``i̇``: two spellings the index would keep apart). ``other_spelling`` gives the
other form, which a new userName must not take from an existing user
(provisioning/user_sync.py).
"""

from __future__ import annotations

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _forms(domain: str) -> tuple[str, str] | None:
    """``(Unicode form, ASCII form)`` of an internationalized domain, None for a plain ASCII
    one; ValidationError when it is none."""
    if domain.isascii() and "xn--" not in domain.lower():
        return None
    try:
        ascii_form = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        return idna.decode(ascii_form), ascii_form
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValidationError(
            f"its domain is no internationalized domain name ({exc}).", code="noncanonical"
        ) from None


def validate_username(value: str) -> None:
    validate_email(value)
    domain = value.rpartition("@")[2]
    forms = _forms(domain)
    if forms is not None and domain.translate(_ASCII_LOWER) not in forms:
        unicode_form, ascii_form = forms
        raise ValidationError(
            f"its domain reads as {unicode_form!r} (IDNA 2008, UTS 46: composed, lower-case): "
            f"write it that way, or as {ascii_form!r}.",
            code="noncanonical",
        )


def other_spelling(username: str) -> str | None:
    """``username`` with its domain in its other canonical form (Unicode ↔ ASCII), or None
    when it has only one. ``username`` must have passed ``validate_username``."""
    local, _, domain = username.rpartition("@")
    forms = _forms(domain)
    if forms is None:
        return None
    unicode_form, ascii_form = forms
    return f"{local}@{ascii_form if domain == unicode_form else unicode_form}"
