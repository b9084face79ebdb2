"""The copyable report of one unexpected exception: where, what, the traceback, the versions; no identifiers.

Built from what the worker pattern hands over (a one-line message and the formatted traceback) or from
an exception object (the last-resort hooks). An exception raised in a child process (the model service,
:class:`viewer.base.child_process.ChildError`) brings its own traceback text, which the report shows
after the parent's. Everything a report shows passes through :func:`viewer.core.privacy.redact`.
"""

from __future__ import annotations

import platform
import sys
import time
import traceback
from dataclasses import dataclass, field

from viewer import __version__
from viewer.core.privacy import redact

#: Packages whose versions a report lists when they are loaded (never imported for the report).
VERSION_MODULES = ("numpy", "pydicom", "PySide6", "pyqtgraph", "SimpleITK", "torch", "timm")


def versions() -> dict[str, str]:
    """radview, Python, the platform, and the version of every listed package already imported."""
    out = {"radview": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in VERSION_MODULES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version:
            out[name] = str(version)
    qt = sys.modules.get("PySide6.QtCore")
    if qt is not None:
        out["Qt"] = str(getattr(qt, "qVersion", lambda: "")())
    return out


def child_traceback(exc: BaseException | None) -> str:
    """The traceback text an exception from a child process carries (anywhere in its cause chain), or ``""``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = getattr(exc, "traceback_text", "")
        if isinstance(text, str) and text:
            return text
        exc = exc.__cause__ or exc.__context__
    return ""


def exception_kind(traceback_text: str, default: str = "Exception") -> str:
    """The exception's class name from the last line of a formatted traceback (``ValueError: ...``)."""
    for line in reversed(traceback_text.strip().splitlines()):
        head = line.split(":", 1)[0].strip()
        if head and " " not in head and not line.startswith(" "):
            return head.rsplit(".", 1)[-1]
    return default


@dataclass(frozen=True)
class ErrorReport:
    """One failure as the error panel lists it.

    ``source`` names where it happened (the worker lane and job, or ``"UI"`` / a thread's name for the
    last-resort hooks). Message and tracebacks are stored redacted.
    """

    source: str
    kind: str
    message: str
    traceback_text: str
    child_traceback_text: str = ""
    when: float = field(default_factory=time.time)

    @classmethod
    def create(cls, source: str, message: str, traceback_text: str, kind: str = "",
               child_text: str = "") -> ErrorReport:
        return cls(source=source, kind=kind or exception_kind(traceback_text),
                   message=redact(message.strip().splitlines()[0] if message.strip() else kind or "error"),
                   traceback_text=redact(traceback_text), child_traceback_text=redact(child_text))

    @classmethod
    def from_exception(cls, source: str, exc: BaseException) -> ErrorReport:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls.create(source, f"{source}: {exc}" if str(exc) else f"{source}: {type(exc).__name__}", text,
                          kind=type(exc).__name__, child_text=child_traceback(exc))

    @property
    def title(self) -> str:
        """One line for the panel's list."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.when))
        return f"{stamp}  {self.kind} in {self.source}: {self.message}"

    def text(self, extra_versions: dict[str, str] | None = None) -> str:
        """The whole report, as copied to the clipboard."""
        info = {**versions(), **(extra_versions or {})}
        lines = [
            "radview error report",
            f"time: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.when))}",
            f"where: {self.source}",
            f"type: {self.kind}",
            f"message: {self.message}",
            "versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
            "",
            "traceback:",
            self.traceback_text.rstrip() or "(none)",
        ]
        if self.child_traceback_text:
            lines += ["", "traceback in the child process:", self.child_traceback_text.rstrip()]
        return redact("\n".join(lines)) + "\n"


__all__ = ["ErrorReport", "child_traceback", "exception_kind", "versions"]
