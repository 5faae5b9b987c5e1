"""The `{name}` / `{name*}` placeholder syntax of rule patterns and templates.

Its own module so that the translate stage (`cdnpurge.core.translate`), which fills templates, and configuration
(`cdnpurge.core.config`), which checks them, share one definition without the translate stage loading
configuration's provider registry (and with it every adapter and its HTTP client).
"""

from __future__ import annotations

import re
from typing import Final

PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\*?)\}")  # {name} one segment, {name*} any number
