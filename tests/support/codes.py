"""Codes a client might send that look like digits and are not ASCII ones."""

from __future__ import annotations

# "123456" in digits that str.isdigit() accepts but no authenticator shows, written as escapes
# because they look like ASCII: Arabic-Indic, superscript, fullwidth.
UNICODE_DIGITS = (
    "\u0661\u0662\u0663\u0664\u0665\u0666",
    "\u00b9\u00b2\u00b3\u2074\u2075\u2076",
    "\uff11\uff12\uff13\uff14\uff15\uff16",
)
