"""The demo study: two real chest CTs, fetched once and converted to DICOM in the user's cache.

The data are the test cases of pyradiomics 3.0.1 (BSD-3-Clause), which ship inside its source
archive on the Python package index: ``data/lung1_image.nrrd`` (512 × 512 × 48) and
``data/lung2_image.nrrd`` (512 × 512 × 61), 5 mm slices in HU, with a lesion label map each. The
archive is fetched with pip (the one client this application can count on reaching the index),
pinned by sha256, kept in the cache, and each image is written as a CT DICOM series by
:mod:`viewer.core.dicom_writer`.

Cache layout (``<cache>`` = ``platformdirs.user_cache_dir("radview")`` or ``$RADVIEW_CACHE_DIR``)::

    <cache>/demo/downloads/pyradiomics-3.0.1.tar.gz   the archive, kept: re-conversion needs no network
    <cache>/demo/lung1/IM0001.dcm … IM0048.dcm
    <cache>/demo/lung2/IM0001.dcm … IM0061.dcm
    <cache>/demo/labels/lung1_label.nrrd, lung2_label.nrrd
    <cache>/demo/manifest.json                        written last; its presence means "complete"

A packaged build (PyInstaller) carries the converted study in ``<resources>/demo`` with the same layout
(without the archive): :func:`ensure_demo_study` uses it when the cache has none, so the first start of a
bundle needs no network (a bundle cannot run pip anyway).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from viewer.base.atomic import atomic_replace_dir, atomic_write_text, fsync_dir
from viewer.base.errors import RadviewError
from viewer.base.model_card import file_sha256  # torch-free at import
from viewer.core.dicom_writer import derive_uid, write_bench_series, write_ct_series
from viewer.core.user_dirs import cache_dir, resources_dir

__all__ = [
    "ARCHIVE_NAME",
    "ARCHIVE_SHA256",
    "CASES",
    "DemoFetchError",
    "DemoStudy",
    "bundled_demo_dir",
    "demo_archive_path",
    "demo_dir",
    "ensure_demo_archive",
    "ensure_demo_study",
    "extract_demo_nrrds",
    "write_demo_bench_series",
]

PACKAGE, VERSION = "pyradiomics", "3.0.1"
ARCHIVE_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
#: sha256 of the sdist on the package index; pip checks it before running the archive's setup.py.
ARCHIVE_SHA256 = "47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5"
ARCHIVE_MB = 34
#: Bump when the converted layout or the DICOM writer's output changes: the cache is then rebuilt.
FORMAT_VERSION = 2  # 2: the slices carry Laterality (empty), so dciodvfy finds no error
#: Case name -> number of slices.
CASES: dict[str, int] = {"lung1": 48, "lung2": 61}
MANIFEST = "manifest.json"
#: ``progress(stage, fraction)``: a sentence for the user and the overall fraction done in [0, 1].
DemoProgress = Callable[[str, float], None]

_lock = threading.Lock()


class DemoFetchError(RadviewError):
    """The demo archive could not be obtained; ``reason`` is one line for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DemoStudy:
    """Where the converted demo study lies.

    Attributes
    ----------
    root:
        ``<cache>/demo``.
    lung1, lung2:
        Folders of the two CT DICOM series (one patient and one study each).
    lung1_label, lung2_label:
        The lesion label maps (NRRD, same grid as the series, 1 inside the lesion).
    """

    root: Path
    lung1: Path
    lung2: Path
    lung1_label: Path
    lung2_label: Path

    @property
    def series_dirs(self) -> tuple[Path, ...]:
        return (self.lung1, self.lung2)


def _study_at(root: Path) -> DemoStudy:
    return DemoStudy(
        root=root,
        lung1=root / "lung1",
        lung2=root / "lung2",
        lung1_label=root / "labels" / "lung1_label.nrrd",
        lung2_label=root / "labels" / "lung2_label.nrrd",
    )


def demo_dir() -> Path:
    """``<cache>/demo``, the root of the converted demo study."""
    return cache_dir() / "demo"


def bundled_demo_dir() -> Path:
    """``<resources>/demo``: the converted study a packaged build ships (absent in a source tree)."""
    return resources_dir() / "demo"


def demo_archive_path() -> Path:
    """Where the pyradiomics archive is kept; a user without pip may put it there by hand."""
    return demo_dir() / "downloads" / ARCHIVE_NAME


# --- fetching -------------------------------------------------------------------------------------


def _manual_hint() -> str:
    return f"or download {ARCHIVE_NAME} (sha256 {ARCHIVE_SHA256}) and put it at {demo_archive_path()}"


def _check_can_fetch() -> None:
    """Fail early, with the fix, where pip cannot run or cannot read the source archive.

    pip must build the archive's metadata, which runs its ``setup.py``: that needs setuptools and
    numpy importable here (``--no-build-isolation``; an isolated build fails because the archive does
    not declare numpy as a build requirement).
    """
    if getattr(sys, "frozen", False):
        raise DemoFetchError(f"this packaged build cannot run pip to fetch the demo study; {_manual_hint()}")
    for module, why in (("pip", "to download"), ("setuptools", "to read the source archive of")):
        if importlib.util.find_spec(module) is None:
            raise DemoFetchError(
                f"{module} is needed {why} {PACKAGE} {VERSION} (pip install {module}); {_manual_hint()}"
            )


def _pip_download_command(requirements: Path, dest: Path) -> list[str]:
    """The pip command that saves the pinned, hash-checked sdist into ``dest`` (and nothing else)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
        str(requirements),
        "-d",
        str(dest),
    ]
    if _pip_version() >= (24, 1):  # "raw" prints "Progress <done> of <total>" lines we can parse
        command[4:4] = ["--progress-bar", "raw"]
    return command


def _pip_version() -> tuple[int, ...]:
    try:
        text = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


_PROGRESS_LINE = re.compile(r"^Progress (\d+) of (\d+)")


def _run_pip(command: list[str], on_fraction: Callable[[float], None]) -> None:
    """Run pip, report its byte progress, and turn a failure into one-line :class:`DemoFetchError`."""
    lines: list[str] = []
    try:
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    match = _PROGRESS_LINE.match(line)
                    if match and int(match.group(2)) > 0:
                        on_fraction(int(match.group(1)) / int(match.group(2)))
                    elif line.strip():
                        lines.append(line.strip())
            except BaseException:  # e.g. a cancelling progress callback: do not wait for the download
                proc.kill()
                raise
            returncode = proc.wait()
    except OSError as exc:
        raise DemoFetchError(f"could not run pip to download {PACKAGE} {VERSION}: {exc}") from exc
    if returncode != 0:
        errors = [line for line in lines if line.startswith("ERROR:")] or lines or [f"exit code {returncode}"]
        detail = errors[-1].removeprefix("ERROR:").strip()
        raise DemoFetchError(f"could not download {PACKAGE} {VERSION} from the package index: {detail}")


def _download_archive(target: Path, progress: DemoProgress) -> None:
    """pip-download the archive into a temporary folder beside ``target`` and move it into place."""
    _check_can_fetch()
    stage = f"Downloading {PACKAGE} {VERSION} ({ARCHIVE_MB} MB) from the package index"
    progress(stage, 0.0)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=target.parent) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{ARCHIVE_SHA256}\n")
        dest = Path(tmp) / "dist"
        _run_pip(_pip_download_command(requirements, dest), lambda f: progress(stage, 0.3 * f))
        saved = dest / ARCHIVE_NAME
        if not saved.is_file():
            raise DemoFetchError(f"pip reported success but saved no {ARCHIVE_NAME}")
        # Not fsynced: a file torn by a power cut fails the sha256 check on next use and is fetched again.
        os.replace(saved, target)
    fsync_dir(target.parent)


def ensure_demo_archive(progress: DemoProgress | None = None) -> Path:
    """The pyradiomics archive in the cache, downloaded first if missing or corrupt.

    Raises
    ------
    DemoFetchError
        If it cannot be downloaded (no network, no pip or setuptools here, a frozen build, ...).
    """
    report = progress or (lambda stage, fraction: None)
    target = demo_archive_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and file_sha256(target) == ARCHIVE_SHA256:
        report(f"Using the cached {PACKAGE} {VERSION} archive", 0.3)
        return target
    target.unlink(missing_ok=True)  # a truncated or foreign file: fetch a good one
    _download_archive(target, report)
    if file_sha256(target) != ARCHIVE_SHA256:
        target.unlink()
        raise DemoFetchError(f"the downloaded {ARCHIVE_NAME} does not have the expected sha256")
    return target


# --- converting -----------------------------------------------------------------------------------


def extract_demo_nrrds(archive: Path, dest_dir: Path, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Extract ``data/<name>.nrrd`` from the archive into ``dest_dir``; returns name -> file.

    Only the named members are read (streamed, never ``extractall``), so no archive path can escape
    ``dest_dir``. ``names`` defaults to each case's ``<case>_image`` and ``<case>_label``.
    """
    wanted = names or tuple(f"{case}_{kind}" for case in CASES for kind in ("image", "label"))
    members = {f"{PACKAGE}-{VERSION}/data/{name}.nrrd": name for name in wanted}
    found: dict[str, Path] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = members.get(member.name)
            if name is None or not member.isfile():
                continue
            source = tar.extractfile(member)
            assert source is not None
            found[name] = dest_dir / f"{name}.nrrd"
            with source, found[name].open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DemoFetchError(f"{archive.name} lacks data/{missing[0]}.nrrd")
    return found


def _convert_case(case: str, nrrd: Path, out_dir: Path, on_slice: Callable[[int, int], None]) -> None:
    """Write one NRRD volume as a CT series (NRRD read by SimpleITK is already in LPS)."""
    image = sitk.ReadImage(str(nrrd))
    hu = sitk.GetArrayFromImage(image)  # (z, y, x), int16 HU
    seed = f"radview demo {PACKAGE}-{VERSION} {case}"
    write_ct_series(
        out_dir,
        hu.astype(np.int16, copy=False),
        spacing_xyz=image.GetSpacing(),
        origin_lps=image.GetOrigin(),
        direction=image.GetDirection(),
        series_description=f"Demo chest CT {case} ({PACKAGE})",
        study_description="radview demo study",
        patient_name=f"Demo^{case.capitalize()}",
        patient_id=f"RADVIEW-DEMO-{case.upper()}",
        study_uid=derive_uid(seed, "study"),
        uid_seed=seed,
        derivation_description=f"{PACKAGE} {VERSION} test data data/{case}_image.nrrd (BSD-3-Clause)",
        progress=on_slice,
    )


def _copy_labels(files: dict[str, Path], labels_dir: Path) -> None:
    with atomic_replace_dir(labels_dir) as tmp:
        for case in CASES:
            shutil.copyfile(files[f"{case}_label"], tmp / f"{case}_label.nrrd")


def _manifest() -> dict[str, object]:
    return {
        "format_version": FORMAT_VERSION,
        "source": {"package": PACKAGE, "version": VERSION, "archive": ARCHIVE_NAME, "sha256": ARCHIVE_SHA256},
        "series": {case: {"dir": case, "files": n} for case, n in CASES.items()},
        "labels": {case: f"labels/{case}_label.nrrd" for case in CASES},
    }


def _complete_study(root: Path) -> DemoStudy | None:
    """The study at ``root`` if its manifest is current and the files it lists are all there."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        return None
    study = _study_at(root)
    for case, n in CASES.items():
        folder = root / case
        if not folder.is_dir() or sum(1 for p in folder.iterdir() if p.suffix == ".dcm") != n:
            return None
    if not (study.lung1_label.is_file() and study.lung2_label.is_file()):
        return None
    return study


def _convert(archive: Path, root: Path, report: DemoProgress) -> DemoStudy:
    (root / MANIFEST).unlink(missing_ok=True)  # "manifest present" must keep meaning "complete"
    report("Extracting the CT volumes", 0.3)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=root) as tmp:
        files = extract_demo_nrrds(archive, Path(tmp))
        start, total = 0.35, sum(CASES.values())
        for case, n in CASES.items():
            stage, span = f"Converting {case} to DICOM", 0.6 * n / total

            def on_slice(done: int, of: int, lo: float = start, w: float = span, s: str = stage) -> None:
                report(s, lo + w * done / of)

            _convert_case(case, files[f"{case}_image"], root / case, on_slice)
            start += span
        report("Copying the lesion labels", start)
        _copy_labels(files, root / "labels")
    atomic_write_text(root / MANIFEST, json.dumps(_manifest(), indent=2) + "\n")
    return _study_at(root)


def ensure_demo_study(progress: DemoProgress | None = None) -> DemoStudy:
    """The demo study in the cache, fetched and converted on first use.

    Parameters
    ----------
    progress:
        ``progress(stage, fraction)``, called from this thread. It may raise (e.g.
        :class:`~viewer.base.errors.Cancelled`) to stop; every folder is written atomically, so a
        stopped or crashed conversion leaves nothing half-written and the next call starts over
        (without downloading again once the archive is cached).

    Returns
    -------
    DemoStudy
        Returned at once, without network, when the manifest says the study is complete: the cached
        one, else the one a packaged build ships (:func:`bundled_demo_dir`, read in place).

    Raises
    ------
    DemoFetchError
        If the archive is not cached and cannot be downloaded.
    """
    report = progress or (lambda stage, fraction: None)
    root = demo_dir()
    with _lock:
        study = _complete_study(root) or _complete_study(bundled_demo_dir())
        if study is None:
            archive = ensure_demo_archive(report)
            study = _convert(archive, root, report)
    report("Demo study ready", 1.0)
    return study


def write_demo_bench_series(
    out_dir: str | Path,
    n_slices: int = 300,
    case: str = "lung1",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """The load benchmark's series: a demo CT interpolated along z to ``n_slices`` 512 × 512 slices.

    Needs the cached archive (downloaded if missing). See
    :func:`viewer.core.dicom_writer.write_bench_series`.
    """
    archive = ensure_demo_archive()
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=archive.parent) as tmp:
        nrrd = extract_demo_nrrds(archive, Path(tmp), (f"{case}_image",))[f"{case}_image"]
        image = sitk.ReadImage(str(nrrd))
    return write_bench_series(
        out_dir,
        sitk.GetArrayFromImage(image),
        n_slices,
        spacing_xyz=image.GetSpacing(),
        origin_lps=image.GetOrigin(),
        direction=image.GetDirection(),
        patient_name=f"Bench^{case.capitalize()}",
        patient_id=f"RADVIEW-BENCH-{case.upper()}",
        progress=progress,
    )
