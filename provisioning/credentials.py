"""SCIM credentials: generated from a CSPRNG, stored only as a keyed digest, shown once.

PRODUCT.md "Credentials": the secret is high-entropy (32 random bytes), so a fast keyed
digest (HMAC-SHA-256 under GATEHOUSE_CREDENTIAL_KEY) is as safe as a slow password hash and
keeps every SCIM request cheap. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils.text import slugify

SECRET_BYTES = 32


def generate_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    key = settings.GATEHOUSE_CREDENTIAL_KEY.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def generate_username(provider_name: str) -> str:
    """``okta_7f3k@<console host>``: recognisable, unguessable enough to not be an account name."""
    stem = slugify(provider_name).replace("-", "_")[:20] or "scim"
    return f"{stem}_{secrets.token_hex(2)}@{settings.GATEHOUSE_HOST}"
