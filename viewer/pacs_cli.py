"""``radview pacs``: echo, find, get, send and listen, against a DIMSE or a DICOMweb node.

A node is a name from the PACS settings (``radview pacs nodes``), ``AET@HOST:PORT`` or a DICOMweb base
URL. radview's own AE title and port come from the settings unless ``--aet`` / ``--port`` say otherwise.
Exit codes: 0 done, 2 usage, 3 nothing found, 4 the node refused or could not be reached, 1 anything
else; an error is one line on stderr. No patient identifier is printed except by ``find`` (whose answer
they are) and no log line carries one (viewer.core.privacy).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from viewer.core.pacs.errors import PacsError
from viewer.core.pacs.nodes import PacsSettings
from viewer.terminal import progress_printer

EXIT_OK = 0

#: The ``--json`` fields of ``find``, in order (``series_uid`` only at series level).
FIND_FIELDS = ("patient_id", "patient_name", "study_uid", "study_date", "accession", "modality", "description",
               "n_instances")


def _settings() -> PacsSettings:
    from viewer.core.pacs.nodes import load_settings

    return load_settings()


def _own_aet(args: argparse.Namespace, settings: PacsSettings) -> str:
    from viewer.core.pacs.nodes import check_ae_title

    return check_ae_title(args.aet) if getattr(args, "aet", None) else settings.ae_title


def cmd_echo(args: argparse.Namespace) -> int:
    from viewer.core.pacs import remote

    settings = _settings()
    node = settings.node(args.node)
    seconds = remote.echo(node, _own_aet(args, settings), timeout=args.timeout)
    print(f"{node}: answered in {seconds * 1000:.0f} ms")
    return EXIT_OK


def cmd_find(args: argparse.Namespace) -> int:
    from viewer.core.pacs import remote
    from viewer.core.pacs.query import Query

    settings = _settings()
    node = settings.node(args.node)
    query = Query(args.level, patient_id=args.patient_id or "", patient_name=args.patient_name or "",
                  study_date=args.study_date or "", modality=args.modality or "", accession=args.accession or "",
                  study_uid=args.study or "")
    rows = remote.find(node, query, _own_aet(args, settings), timeout=args.timeout)
    fields = FIND_FIELDS + (("series_uid",) if args.level == "series" else ())
    if args.json:
        print(json.dumps([{k: r.get(k) for k in fields} for r in rows], indent=2))
        return EXIT_OK
    for r in rows:
        n = "?" if r["n_instances"] is None else r["n_instances"]
        uid = r.get("series_uid") if args.level == "series" else r["study_uid"]
        print(f"{r['patient_id']:<16} {r['patient_name']:<24} {r['study_date']:<8} {r['modality']:<6} "
              f"{n:>5}  {r['description'][:32]:<32} {uid}")
    return EXIT_OK


def _cancel_on_sigint() -> threading.Event:
    """An event set by Ctrl+C, so a transfer stops between instances and keeps what arrived."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def cmd_get(args: argparse.Namespace) -> int:
    from viewer.core.pacs import remote
    from viewer.core.pacs.study_cache import StudyFolder

    settings = _settings()
    node = settings.node(args.node)
    own = _own_aet(args, settings)
    folder = StudyFolder(args.out, args.study)
    stop = _cancel_on_sigint()
    kwargs = {"series_uid": args.series or "", "progress": progress_printer("retrieving"), "cancelled": stop.is_set,
              "timeout": args.timeout}
    if args.move_to:
        if node.is_dicomweb:
            raise PacsError("--move-to is C-MOVE, a DIMSE retrieve: this node is DICOMweb")
        from viewer.core.pacs.storage_scp import StorageSCP, retrieve_by_move

        with StorageSCP(args.out, args.move_to, args.port or settings.port, args.host) as scp:
            result = retrieve_by_move(node, own, args.study, folder, scp, **kwargs)
    else:
        result = remote.retrieve(node, own, args.study, folder, **kwargs)
    print(f"{result.folder}: {result.received} instance(s) received, {result.skipped} already here, "
          f"{result.listed} in all")
    return EXIT_OK


def _is_part10(path: Path) -> bool:
    """A DICOM file with its file meta (``DICM`` at byte 128): what C-STORE and STOW-RS send as it is."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _dicom_files(paths: list[str]) -> list[Path]:
    """The DICOM files of ``paths`` (folders searched recursively; other files there are left out)."""
    out: list[Path] = []
    for text in paths:
        p = Path(text)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and _is_part10(f))
        elif p.is_file():
            out.append(p)
        else:
            raise PacsError(f"no such file or folder: {text}")
    return out


def cmd_send(args: argparse.Namespace) -> int:
    from viewer.core.pacs import remote
    from viewer.core.pacs.errors import NothingFound

    settings = _settings()
    node = settings.node(args.node)
    files = _dicom_files(args.paths)
    if not files:
        raise NothingFound("no DICOM file to send")
    stop = _cancel_on_sigint()
    result = remote.send(node, _own_aet(args, settings), files, progress=progress_printer("sending"),
                         cancelled=stop.is_set, timeout=args.timeout)
    for name, reason in result.failed[:10]:
        print(f"  refused {name}: {reason}", file=sys.stderr)
    print(f"{node}: {result.sent} of {len(files)} instance(s) sent")
    if result.failed:
        raise PacsError(f"{len(result.failed)} of {len(files)} instance(s) were refused")
    return EXIT_OK


def cmd_listen(args: argparse.Namespace) -> int:
    from viewer.core.pacs.storage_scp import StorageSCP

    settings = _settings()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def stored(item) -> None:
        print(f"received {item.sop_uid} of study {item.study_uid} from {item.calling_aet or '?'}", flush=True)

    port = args.port or settings.port
    with StorageSCP(args.out, _own_aet(args, settings), port, args.host, on_stored=stored) as scp:
        print(f"listening as {scp.ae_title} on port {port}; files go to {Path(args.out).resolve()} "
              "(Ctrl+C stops)", flush=True)
        stop.wait()
    print(f"stopped: {scp.received} received, {scp.refused} refused", flush=True)
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    from viewer.core.pacs.nodes import parse_node, save_settings

    settings = _settings()
    if args.action == "add":
        if not args.name or not args.node:
            raise PacsError("usage: radview pacs nodes add NAME NODE [--user U --password P]")
        settings = settings.with_node(parse_node(args.node, args.name, args.user or "", args.password or ""))
        save_settings(settings)
    elif args.action == "remove":
        if not any(n.name == args.name for n in settings.nodes):
            raise PacsError(f"no node named {args.name!r}")
        settings = settings.without_node(args.name)
        save_settings(settings)
    print(f"radview is {settings.ae_title}, listening on port {settings.port} when asked")
    for n in settings.nodes:
        print(f"{n.name:<16} {n}{'  (basic auth)' if n.username else ''}")
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``pacs`` and its subcommands to ``radview``'s parser."""
    from viewer.core.pacs.dimse import TIMEOUT_S
    from viewer.core.pacs.query import LEVELS

    pacs = sub.add_parser("pacs", help="query, retrieve, send and receive: DIMSE or DICOMweb")
    verbs = pacs.add_subparsers(dest="pacs_command", required=True)

    def verb(name: str, help_text: str, func) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_text)
        p.add_argument("--aet", help="radview's AE title for this call (default: the settings', RADVIEW)")
        p.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds (default {TIMEOUT_S:g})")
        p.set_defaults(func=func)
        return p

    p = verb("echo", "C-ECHO (or a one-study QIDO-RS search): is the node there and does it talk to us", cmd_echo)
    p.add_argument("node", help="a node name from the settings, AET@HOST:PORT, or a DICOMweb URL")

    p = verb("find", "search at patient, study or series level", cmd_find)
    p.add_argument("node")
    p.add_argument("--level", choices=LEVELS, default="study")
    p.add_argument("--patient-id", help="patient ID (* and ? are wildcards)")
    p.add_argument("--patient-name", help="patient name, e.g. 'DOE^J*'")
    p.add_argument("--study-date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)")
    p.add_argument("--modality", help="e.g. CT")
    p.add_argument("--accession", help="accession number")
    p.add_argument("--study", help="StudyInstanceUID")
    p.add_argument("--json", action="store_true", help="a JSON list of the rows")

    p = verb("get", "retrieve a study or series (C-GET, C-MOVE with --move-to, or WADO-RS) into a folder", cmd_get)
    p.add_argument("node")
    p.add_argument("--study", required=True, help="StudyInstanceUID")
    p.add_argument("--series", help="only this SeriesInstanceUID")
    p.add_argument("--out", required=True, help="folder; the study goes to OUT/<StudyInstanceUID>/")
    p.add_argument("--move-to", metavar="AET", help="C-MOVE to radview's own storage SCP under this AE title "
                   "(the PACS must know it at this host and --port)")
    p.add_argument("--port", type=int, help="the storage SCP's port for --move-to (default: the settings')")
    p.add_argument("--host", default="", help="the address the storage SCP listens on (default: every one)")

    p = verb("send", "send DICOM files or folders (C-STORE or STOW-RS)", cmd_send)
    p.add_argument("node")
    p.add_argument("paths", nargs="+")

    p = verb("listen", "run radview's storage SCP: keep the studies pushed to it", cmd_listen)
    p.add_argument("--port", type=int, help="default: the settings' (11112)")
    p.add_argument("--host", default="", help="the address to listen on (default: every one)")
    p.add_argument("--out", required=True, help="folder; each study goes to OUT/<StudyInstanceUID>/")

    p = verbs.add_parser("nodes", help="list, add or remove the nodes kept in the settings")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("node", nargs="?", help="AET@HOST:PORT or a DICOMweb URL")
    p.add_argument("--user", help="DICOMweb basic-auth user name")
    p.add_argument("--password", help="DICOMweb basic-auth password (kept in the settings, owner-readable only)")
    p.set_defaults(func=cmd_nodes)
