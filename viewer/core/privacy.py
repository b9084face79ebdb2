"""Keep patient identifiers out of logs and error reports.

The viewer must show names, IDs and birth dates (the patient lines, the tag panel), but what it *writes*
for diagnosis — log records, the copyable error report — must not carry them. Two sources could leak
them there: file and folder names (PACS exports often name folders after the patient) and messages of
exceptions raised while a dataset was at hand. Rather than hope every message is clean, every header
the scan reads registers its identifying values here (:func:`remember_identifiers`), and every log
record and error report passes through :func:`redact`, which replaces those values wherever they
appear (case-insensitively, as whole tokens; dates also in the usual written forms).

:func:`install_log_redaction` installs this for the whole process as a log-record factory, so it holds
for every logger and handler (including ones added later, such as a test's capture).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Mapping
from typing import Any

#: What an identifier is replaced with.
REDACTED = "[redacted]"
#: Shortest name component and ID remembered (shorter ones would blot out ordinary words).
MIN_NAME_PART = 2
MIN_ID = 3
#: Header fields holding identifiers (the keys of :attr:`viewer.core.header.FileHeader.patient`).
NAME_FIELDS = ("PatientName",)
ID_FIELDS = ("PatientID",)
DATE_FIELDS = ("PatientBirthDate",)

_lock = threading.Lock()
#: The fields registered last (a study's files repeat them: registered once).
_last: tuple[tuple[str, object], ...] | None = None
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
_installed = False


def _date_forms(value: str) -> list[str]:
    """A DICOM date (YYYYMMDD) as it may be written elsewhere: 19700131, 1970-01-31, 31.01.1970, 01/31/1970..."""
    digits = value.strip()
    if len(digits) != 8 or not digits.isdigit():
        return [digits] if len(digits) >= MIN_ID else []
    y, m, d = digits[:4], digits[4:6], digits[6:]
    return [digits, f"{y}-{m}-{d}", f"{y}.{m}.{d}", f"{y}/{m}/{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}",
            f"{d}-{m}-{y}"]


def _name_parts(value: str) -> list[str]:
    """A person name (``Family^Given^Middle^Prefix^Suffix``, maybe with ideographic groups after ``=``)
    as a whole and as its words."""
    value = value.strip()
    if not value:
        return []
    out = [value, value.replace("^", " ").strip(), value.replace("^", "_").strip("_")]
    out += [w for w in re.split(r"[\^=\s,]+", value) if len(w) >= MIN_NAME_PART]
    return out


def identifier_values(patient: Mapping[str, str]) -> set[str]:
    """The strings :func:`redact` should hide for one patient's header fields."""
    values: set[str] = set()
    for key in NAME_FIELDS:
        values.update(_name_parts(str(patient.get(key, "") or "")))
    for key in ID_FIELDS:
        v = str(patient.get(key, "") or "").strip()
        if len(v) >= MIN_ID:
            values.add(v)
    for key in DATE_FIELDS:
        values.update(_date_forms(str(patient.get(key, "") or "")))
    return {v for v in values if v}


def remember_identifiers(patient: Mapping[str, str]) -> None:
    """Register one header's identifying values (called by the header reader for every file; cheap: the
    files of one study repeat the same fields, which are registered once)."""
    global _pattern, _last
    key = tuple(patient.items())
    if key == _last:
        return
    _last = key
    new = identifier_values(patient)
    if new <= _values:
        return
    with _lock:
        _values.update(new)
        _pattern = None


def remember_dataset_identifiers(ds: Any) -> None:
    """:func:`remember_identifiers` for a dataset as it arrives over the network (anything with ``get``):
    its patient name, ID and birth date."""
    remember_identifiers({k: str(ds.get(k, "") or "") for k in (*NAME_FIELDS, *ID_FIELDS, *DATE_FIELDS)})


def forget_identifiers() -> None:
    """Drop every remembered value (tests)."""
    global _pattern, _last
    with _lock:
        _values.clear()
        _last = None
        _pattern = None


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _values:
            # longest first, so a full name is replaced whole before its words; tokens bounded by
            # non-alphanumerics so "Li" does not hit "Linear" (a date may run into a time: no right bound)
            alternatives = sorted(_values, key=len, reverse=True)
            body = "|".join(re.escape(v) for v in alternatives)
            _pattern = re.compile(rf"(?<![0-9A-Za-z])(?:{body})(?![A-Za-z])", re.IGNORECASE)
        return _pattern


def redact(text: str) -> str:
    """``text`` with every remembered identifier replaced by :data:`REDACTED`."""
    if not text or not _values:
        return text
    pattern = _compiled()
    return pattern.sub(REDACTED, text) if pattern is not None else text


def install_log_redaction() -> None:
    """Redact every log record of this process from now on (idempotent).

    A record factory, not a handler filter: it holds for every logger and every handler, including
    handlers added later. The message is formatted once and replaced; an exception's traceback text is
    formatted and redacted into ``exc_text``, which formatters use as is.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if not _values:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call: logging reports it itself when it formats the record
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)


__all__ = [
    "REDACTED", "forget_identifiers", "identifier_values", "install_log_redaction", "redact", "remember_identifiers",
]
