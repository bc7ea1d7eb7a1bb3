"""Redaction of personal data in a question before it is stored (question log, review queue).

What a user types into an FAQ widget sometimes carries an e-mail address, a phone number,
a social-security number (NIR) or an IBAN; none of them helps a curator, so none is stored.
"""

from __future__ import annotations

import re

# Order matters: an IBAN or a NIR contains digit runs a phone pattern would take in part.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE), "[e-mail]"),
    (
        # FR76 3000 6000 0112 3456 7890 189, with or without spaces.
        re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.I),
        "[IBAN]",
    ),
    (
        # NIR: sex, year, month (or 20-99 for some births), department (2A/2B), commune,
        # order, optional key; spaces or dots between the groups.
        re.compile(
            r"(?<![\w])[1-478][ .]?\d{2}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{2}|2[ABab])"
            r"[ .]?\d{3}[ .]?\d{3}(?:[ .]?\d{2})?(?!\d)"
        ),
        "[numéro de sécurité sociale]",
    ),
    (
        # French numbers: 0X XX XX XX XX, +33 (0)X…, 0033 X…
        re.compile(
            r"(?<![\w+])(?:(?:\+|00)33[ .-]?(?:\(0\)[ .-]?)?|0)[1-9](?:[ .-]?\d{2}){4}(?!\d)"
        ),
        "[téléphone]",
    ),
    (
        # International numbers: a + (or 00) country code, then 6 to 14 digits in groups.
        re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\d)"),
        "[téléphone]",
    ),
    # Any other long run of digits (a card, an account, a patient number): 10 digits or more.
    (re.compile(r"(?<!\d)\d(?:[ .-]?\d){9,}(?!\d)"), "[numéro]"),
)


def redact(text: str) -> str:
    """`text` with e-mails, phone numbers, NIR, IBAN and long numbers replaced by a label."""
    for pattern, label in _PATTERNS:
        text = pattern.sub(label, text)
    return text


__all__ = ["redact"]
