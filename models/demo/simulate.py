"""radview's lung-nodule simulator: synthetic nodules inserted into real CT volumes (HU).

The demo model has only two real chest CTs to learn from, so its positives are made here: solid,
part-solid and ground-glass nodules (4–30 mm), a few calcified ones and masses up to 60 mm, with
ellipsoid, lobulated or spiculated shapes, sometimes attached to the pleura or to a vessel, placed
inside the lung parenchyma and away from any real lesion, with the partial-volume blur of thick
slices and noise borrowed from the same slice. Size, texture, calcification and shape mix follow
the LIDC-IDRI annotation statistics in ``models/lidc_stats.json`` (see :mod:`models.demo.lidc_stats`).

How a nodule is drawn (one vectorised pass over its bounding box):

1. *Shape*: a signed distance ``sdf(p)`` (mm, negative inside) of an ellipsoid, a union of lobes, or a
   core with tapered spicules, rotated in plane (and tilted a little).
2. *Edge blur*: in-plane occupancy ``a = sigmoid(-sdf / s)``, ``s`` ≈ 0.3–0.55 mm, the width of a
   scanner's point-spread function at this pixel size.
3. *Partial volume*: each slice's value is the mean over ``ceil(thickness / 1 mm)`` sub-planes across
   its thickness (a box slice-sensitivity profile), so a nodule spans slices by its size: a 4 mm nodule
   between two 5 mm slices shows at ≈ 40 % contrast on both.
4. *Density*: a target HU map ``T(p)`` (solid core, ground-glass level, part-solid core, calcification)
   with a low-frequency texture; the slice becomes ``hu + mean_z(a · max(T − hu, 0))``: the nodule only
   raises darker voxels, so vessels through a ground-glass nodule and bone or soft tissue beside a
   juxtapleural one keep their own values.
5. *Noise*: white noise shaped by the noise power spectrum measured in homogeneous soft tissue of the
   same slice (the scanner's own mottle and level), weighted by how much of each voxel was replaced.

Lung parenchyma (:func:`lung_mask`): voxels below −400 HU, 3-D connected components, minus those
touching the image border (outside air), keeping the one or two largest (the lungs; bowel gas is far
smaller), closed in plane and with small holes (vessels) filled.

Everything is seeded (``numpy.random.Generator``) and uses numpy and SimpleITK only, no torch:
:func:`prepare` does the per-volume work once (lung mask, depth map, noise spectra; ~1–2 s for
512 × 512 × 61), then :func:`insert_nodules` costs ~1–30 ms a nodule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from models.demo.lung_context import AIR_HU, LungContext, box_mean, simpleitk
from models.demo.nodules import InsertedNodule, NoduleSpec, Simulation, SimulationError

__all__ = ["erase_lesion", "insert_nodules"]

# --- lung segmentation -----------------------------------------------------------------------------


# --- sampling specs --------------------------------------------------------------------------------


# --- drawing ---------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _unit(rng: np.random.Generator, n: int, z_scale: float = 1.0) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 0] *= z_scale
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass(frozen=True)
class _Geometry:
    """Random shape and density parameters of one nodule (mm, relative to its centre, (z, y, x))."""

    rot: np.ndarray  # 3x3 rotation applied to points
    axes: np.ndarray  # semi-axes (z, y, x) of the body
    lobes: np.ndarray  # (L, 4): centre z, y, x, radius
    spicules: np.ndarray  # (S, 8): start z,y,x, direction z,y,x, length, base width
    edge: float
    hu_solid: float
    hu_ggo: float
    core: np.ndarray  # (4,) part-solid core centre + radius (radius 0 if none)
    calc: np.ndarray  # (C, 4) calcification blobs
    hu_calc: float
    waves: np.ndarray  # (K, 4): wave vector z,y,x and phase
    tex_amp: float
    extent: float  # radius of a sphere containing everything (mm)


def _geometry(spec: NoduleSpec, rng: np.random.Generator) -> _Geometry:
    r = spec.diameter_mm / 2.0
    # in-plane rotation and a small tilt
    th = rng.uniform(0, 2 * math.pi)
    tilt = rng.normal(0, 0.15)
    c, s = math.cos(th), math.sin(th)
    rz = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    ct, st = math.cos(tilt), math.sin(tilt)
    rx = np.array([[ct, -st, 0], [st, ct, 0], [0, 0, 1]])
    rot = rz @ rx
    # the longest axial semi-axis equals r: (y) = r, (x) in [0.72, 1] r, (z) in [0.75, 1.1] r
    axes = np.array([r * rng.uniform(0.75, 1.1), r, r * rng.uniform(0.72, 1.0)])
    lobes = np.zeros((0, 4))
    spicules = np.zeros((0, 8))
    extent = r * 1.15
    if spec.shape == "lobulated":
        axes = axes * 0.78
        n = int(rng.integers(3, 7))
        dirs = _unit(rng, n, z_scale=0.6)
        rad = r * rng.uniform(0.32, 0.55, n)
        cen = dirs * (r - rad)[:, None]
        lobes = np.concatenate([cen, rad[:, None]], 1)
    elif spec.shape == "spiculated":
        axes = axes * rng.uniform(0.9, 1.0)
        n = int(rng.integers(5, 14))
        dirs = _unit(rng, n, z_scale=0.5)
        start = dirs * (0.75 * r)
        length = np.minimum(r * rng.uniform(0.4, 1.1, n), 12.0) + rng.uniform(1.0, 4.0, n)
        width = rng.uniform(0.35, 0.9, n) * min(1.0, 0.25 + r / 8.0)
        spicules = np.concatenate([start, dirs, length[:, None], width[:, None]], 1)
        extent = float(0.75 * r + length.max() + 1.0)
    edge = float(rng.uniform(0.3, 0.55))
    hu_solid = float(np.clip(rng.normal(25, 25), -60, 90))
    hu_ggo = float(rng.uniform(-720, -380))
    core = np.zeros(4)
    if spec.texture == "part-solid":
        cr = r * rng.uniform(0.25, 0.6)
        off = _unit(rng, 1, 0.5)[0] * (r - cr) * rng.uniform(0, 0.6)
        core = np.array([*off, cr])
        hu_ggo = float(rng.uniform(-650, -380))
    if spec.kind == "mass":
        hu_solid = float(np.clip(rng.normal(35, 15), 0, 70))
    calc = np.zeros((0, 4))
    hu_calc = 0.0
    if spec.calcification == "central":
        cr = r * rng.uniform(0.25, 0.55)
        calc = np.array([[*(_unit(rng, 1)[0] * r * rng.uniform(0, 0.2)), cr]])
        hu_calc = float(rng.uniform(250, 900))
    elif spec.calcification == "diffuse":
        calc = np.array([[0.0, 0.0, 0.0, r * 1.2]])
        hu_calc = float(rng.uniform(200, 700))
    elif spec.calcification == "popcorn":
        n = int(rng.integers(3, 7))
        cen = _unit(rng, n) * r * rng.uniform(0.1, 0.6, n)[:, None]
        calc = np.concatenate([cen, (r * rng.uniform(0.12, 0.25, n))[:, None]], 1)
        hu_calc = float(rng.uniform(300, 1000))
    k = 6
    wl = rng.uniform(3.0, 8.0, k)
    waves = np.concatenate([_unit(rng, k) * (2 * math.pi / wl)[:, None], rng.uniform(0, 2 * math.pi, (k, 1))], 1)
    tex_amp = float(rng.uniform(25, 60) if spec.texture == "ggo" else rng.uniform(8, 25))
    extent = max(extent, float(np.abs(lobes[:, :3]).max(initial=0) + lobes[:, 3].max(initial=0)))
    return _Geometry(rot, axes, lobes, spicules, edge, hu_solid, hu_ggo, core, calc, hu_calc, waves, tex_amp, extent)


def _render(
    spec: NoduleSpec, g: _Geometry, pz: np.ndarray, py: np.ndarray, px: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy ``a`` and target HU ``T`` at points (mm from the centre; broadcastable arrays)."""
    R = g.rot.astype(np.float32)
    pz, py, px = (np.asarray(v, np.float32) for v in (pz, py, px))
    qz = R[0, 0] * pz + R[0, 1] * py + R[0, 2] * px
    qy = R[1, 0] * pz + R[1, 1] * py + R[1, 2] * px
    qx = R[2, 0] * pz + R[2, 1] * py + R[2, 2] * px
    az, ay, ax = g.axes
    q = np.sqrt((qz / az) ** 2 + (qy / ay) ** 2 + (qx / ax) ** 2)
    sdf = (q - 1.0) * min(az, ay, ax)
    for cz, cy, cx, rr in g.lobes:
        sdf = np.minimum(sdf, np.sqrt((qz - cz) ** 2 + (qy - cy) ** 2 + (qx - cx) ** 2) - rr)
    if len(g.spicules):
        sdf = np.array(np.broadcast_to(sdf, np.broadcast_shapes(pz.shape, py.shape, px.shape)))
        qz, qy, qx = (np.broadcast_to(v, sdf.shape) for v in (qz, qy, qx))
        zlo, zhi = pz.min(axis=tuple(range(1, pz.ndim))), pz.max(axis=tuple(range(1, pz.ndim)))
        yv, xv = py.reshape(-1), px.reshape(-1)
    for sz, sy, sx, dz, dy, dx, length, w in g.spicules:
        # each spicule is computed only inside its own bounding box (original, unrotated coordinates)
        ends = R.T @ np.array([[sz, sy, sx], [sz + length * dz, sy + length * dy, sx + length * dx]]).T
        pad = w + 4 * g.edge
        lo, hi = ends.min(1) - pad, ends.max(1) + pad
        iz = np.flatnonzero((zhi >= lo[0]) & (zlo <= hi[0]))
        iy = np.flatnonzero((yv >= lo[1]) & (yv <= hi[1]))
        ix = np.flatnonzero((xv >= lo[2]) & (xv <= hi[2]))
        if not (len(iz) and len(iy) and len(ix)):
            continue
        box = (slice(iz[0], iz[-1] + 1), ..., slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
        vz, vy, vx = qz[box] - sz, qy[box] - sy, qx[box] - sx
        t = np.clip((vz * dz + vy * dy + vx * dx) / length, 0.0, 1.0)
        dist = np.sqrt((vz - t * length * dz) ** 2 + (vy - t * length * dy) ** 2 + (vx - t * length * dx) ** 2)
        sdf[box] = np.minimum(sdf[box], dist - w * (1.0 - 0.8 * t))
    a = _sigmoid(-sdf / g.edge)
    # texture: low-frequency, so evaluated once per slice (middle sub-plane) and broadcast
    mz = pz[:, pz.shape[1] // 2 : pz.shape[1] // 2 + 1] if pz.ndim == 4 and pz.shape[1] > 1 else pz
    tz = R[0, 0] * mz + R[0, 1] * py + R[0, 2] * px
    ty = R[1, 0] * mz + R[1, 1] * py + R[1, 2] * px
    tx = R[2, 0] * mz + R[2, 1] * py + R[2, 2] * px
    tex = np.zeros(np.broadcast_shapes(tz.shape, ty.shape, tx.shape), np.float32)
    for wz, wy, wx, ph in g.waves:
        tex = tex + np.cos(wz * tz + wy * ty + wx * tx + ph)
    tex *= np.float32(g.tex_amp * math.sqrt(2.0 / len(g.waves)))
    if spec.texture == "solid":
        T = g.hu_solid + tex
    elif spec.texture == "ggo":
        T = g.hu_ggo + tex
    else:
        cz, cy, cx, cr = g.core
        ac = _sigmoid(-(np.sqrt((qz - cz) ** 2 + (qy - cy) ** 2 + (qx - cx) ** 2) - cr) / g.edge)
        T = g.hu_ggo + ac * (g.hu_solid - g.hu_ggo) + tex
    if len(g.calc):
        ac = np.zeros_like(a)
        for cz, cy, cx, cr in g.calc:
            ac = np.maximum(ac, _sigmoid(-(np.sqrt((qz - cz) ** 2 + (qy - cy) ** 2 + (qx - cx) ** 2) - cr) / g.edge))
        T = T + ac * (g.hu_calc - T)
    return a.astype(np.float32), np.asarray(T, np.float32)


def _noise(ctx: LungContext, ks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``(len(ks), h, w)`` noise with the NPS of each slice ``k`` (white noise circularly convolved)."""
    h, w = shape
    kz = ctx.noise_kernels[np.clip(ks, 0, len(ctx.noise_kernels) - 1)]
    n = kz.shape[-1]
    H, W = h + n, w + n
    white = rng.standard_normal((len(ks), H, W), dtype=np.float32)
    kp = np.zeros((len(ks), H, W), np.float32)
    kp[:, :n, :n] = kz
    out = np.fft.irfft2(np.fft.rfft2(white) * np.fft.rfft2(kp), s=(H, W))
    return out[:, n : n + h, n : n + w].astype(np.float32)


def _place(
    spec: NoduleSpec,
    g: _Geometry,
    ctx: LungContext,
    rng: np.random.Generator,
    placed: list[tuple[np.ndarray, float]],
) -> tuple[float, float, float]:
    """Choose a centre (voxel z, y, x) for the nodule, per its attachment; raise if none fits."""
    r = spec.diameter_mm / 2.0
    ext = g.extent
    sz, sy, sx = ctx.spacing
    cand = ctx.candidates
    ok = ctx.allowed_slices[cand[:, 0]] & (ctx.cand_lesion >= ext + ctx.margin_mm)
    att = spec.attachment
    for relax in (1.0, 0.75, 0.5, 0.3):
        if att == "isolated":
            sel = ok & (ctx.cand_depth >= (r + 1.0) * relax)
        elif att == "pleural":
            sel = ok & (ctx.cand_depth >= 0.2 * r * relax) & (ctx.cand_depth <= max(0.6 * r, 2.0))
        else:  # vascular: on a vessel inside the lung
            sel = ok & (ctx.cand_hu > -500) & (ctx.cand_depth >= 0.7 * r * relax)
        idx = np.flatnonzero(sel)
        if len(idx):
            rng.shuffle(idx)
            for i in idx[:200]:
                c = cand[i].astype(float)
                cmm = c * np.array([sz, sy, sx])
                if all(np.linalg.norm(cmm - pc) >= ext + pr + 3.0 for pc, pr in placed):
                    return (float(c[0] + rng.uniform(-0.5, 0.5)), float(c[1]), float(c[2]))
    raise SimulationError(f"no room for a {spec.diameter_mm:.0f} mm {att} nodule in this volume")


def insert_nodules(
    ctx: LungContext,
    specs: Sequence[NoduleSpec],
    rng: np.random.Generator | int,
    *,
    skip_unplaceable: bool = True,
) -> Simulation:
    """Insert ``specs`` into a copy of ``ctx.volume``.

    Parameters
    ----------
    ctx:
        From :func:`prepare`.
    specs:
        What to insert; a spec with ``centre_vox`` is drawn there (no placement check), others are
        placed inside the lung per their attachment, apart from each other and from real lesions.
    rng:
        A generator or a seed: the same seed gives the same volume, bit for bit.
    skip_unplaceable:
        Leave out a nodule with no room for it (else raise :class:`SimulationError`).
    """
    rng = np.random.default_rng(rng)
    vol = ctx.volume.copy()
    occ = np.zeros(vol.shape, np.float32)
    sz, sy, sx = ctx.spacing
    Z, H, W = vol.shape
    nsub = max(3, int(math.ceil(sz / 1.0)))
    sub_off = (np.arange(nsub) + 0.5) / nsub - 0.5  # fractions of a slice, centred
    placed: list[tuple[np.ndarray, float]] = []
    out: list[InsertedNodule] = []
    for spec in specs:
        g = _geometry(spec, rng)
        if spec.centre_vox is None:
            try:
                cz, cy, cx = _place(spec, g, ctx, rng, placed)
            except SimulationError:
                if skip_unplaceable:
                    continue
                raise
        else:
            cz, cy, cx = (float(v) for v in spec.centre_vox)
        ext = g.extent + 3 * g.edge
        k0 = max(0, int(math.floor(cz - ext / sz - 0.5)))
        k1 = min(Z - 1, int(math.ceil(cz + ext / sz + 0.5)))
        y0, y1 = max(0, int(cy - ext / sy) - 1), min(H, int(cy + ext / sy) + 2)
        x0, x1 = max(0, int(cx - ext / sx) - 1), min(W, int(cx + ext / sx) + 2)
        if k1 < k0 or y1 <= y0 or x1 <= x0:
            continue
        ks = np.arange(k0, k1 + 1)
        pz = ((ks[:, None] + sub_off[None, :]) - cz) * sz  # (nk, nsub)
        py = (np.arange(y0, y1) - cy) * sy
        px = (np.arange(x0, x1) - cx) * sx
        a, T = _render(spec, g, pz[:, :, None, None], py[None, None, :, None], px[None, None, None, :])
        hu = vol[k0 : k1 + 1, y0:y1, x0:x1]
        # the real lesion and a margin around it are never touched, whatever a nodule's fringe does
        box_forbidden = ctx.lesion_distance[k0 : k1 + 1, y0:y1, x0:x1] <= ctx.margin_mm
        gain = np.maximum(T - hu[:, None], 0.0)
        effect = (a * gain).mean(axis=1)
        o = a.mean(axis=1)
        replaced = (a * (gain > 0)).mean(axis=1)
        noise = _noise(ctx, ks, hu.shape[1:], rng)
        wgt = np.sqrt(np.clip(1.0 - (1.0 - replaced) ** 2, 0.0, 1.0))
        delta = effect + noise * wgt
        delta[box_forbidden | (o < 0.005)] = 0.0
        o = np.where(box_forbidden, 0.0, o)
        vol[k0 : k1 + 1, y0:y1, x0:x1] = hu + delta
        occ[k0 : k1 + 1, y0:y1, x0:x1] = np.maximum(occ[k0 : k1 + 1, y0:y1, x0:x1], o)
        peaks, centres = {}, {}
        for i, k in enumerate(ks):
            ok = o[i]
            pk = float(ok.max())
            if pk < 0.02:
                continue
            peaks[int(k)] = pk
            wsum = float(ok.sum())
            yy = float((ok.sum(1) * np.arange(y0, y1)).sum() / wsum)
            xx = float((ok.sum(0) * np.arange(x0, x1)).sum() / wsum)
            centres[int(k)] = (yy, xx)
        cmm = np.array([cz * sz, cy * sy, cx * sx])
        placed.append((cmm, g.extent))
        out.append(
            InsertedNodule(
                spec=replace(spec, centre_vox=(cz, cy, cx)),
                centre_mm=(float(cmm[0]), float(cmm[1]), float(cmm[2])),
                slice_peak=peaks,
                slice_centre=centres,
            )
        )
    return Simulation(volume=vol, occupancy=occ, nodules=out)


def erase_lesion(
    volume: np.ndarray,
    lesion: np.ndarray,
    lung: np.ndarray | None = None,
    *,
    seed: int = 0,
    dilate_px: int = 2,
    iterations: int = 400,
) -> np.ndarray:
    """Replace a real lesion by surrounding parenchyma: the erasure control of the demo model.

    In each slice the (slightly dilated) lesion is filled by harmonic inpainting from the aerated lung
    around it: the fill starts at the median parenchyma HU of a 25-px ring and relaxes (Jacobi
    iterations) towards the values of neighbouring parenchyma pixels (below −650 HU), ignoring chest
    wall, vessels and mediastinum, so a juxtapleural lesion becomes lung up to the wall rather than a
    smear of tissue. Then mottle at the ring's own texture level (robust high-pass deviation, smoothed
    noise) is added, so the patch
    is neither a flat hole nor salt and pepper. Everything outside the dilated lesion stays bit for bit.
    ``lung`` is accepted for symmetry with :func:`prepare` and used only when the ring has too little
    parenchyma. Returns a new float32 volume.
    """
    sitk = simpleitk()
    vol = np.asarray(volume, np.float32).copy()
    les = np.asarray(lesion) > 0
    if dilate_px:
        les = sitk.GetArrayFromImage(
            sitk.BinaryDilate(sitk.GetImageFromArray(les.astype(np.uint8)), [dilate_px, dilate_px, 0])
        ).astype(bool)
    rng = np.random.default_rng(seed)
    ring_all = sitk.GetArrayFromImage(
        sitk.BinaryDilate(sitk.GetImageFromArray(les.astype(np.uint8)), [25, 25, 0])
    ).astype(bool) & ~les
    H, W = vol.shape[1:]
    for k in np.flatnonzero(les.reshape(len(les), -1).any(1)):
        m = les[k]
        ys, xs = np.nonzero(ring_all[k] | m)
        y0, y1 = max(0, ys.min() - 1), min(H, ys.max() + 2)
        x0, x1 = max(0, xs.min() - 1), min(W, xs.max() + 2)
        sub = vol[k, y0:y1, x0:x1]
        mk = m[y0:y1, x0:x1]
        ring = ring_all[k, y0:y1, x0:x1] & (sub < -650) & (sub > -990)  # aerated parenchyma, no vessel edges
        pool = sub[ring]
        if pool.size < 50 and lung is not None:
            pool = vol[k][lung[k] & (vol[k] < AIR_HU)]
        base = float(np.median(pool)) if pool.size else -850.0
        # texture level of the surrounding parenchyma: high-pass std inside the ring
        hp = sub - box_mean(sub[None], 2)[0]
        tex = float(np.clip(1.4826 * np.median(np.abs(hp[ring])) if ring.sum() > 20 else 10.0, 3.0, 30.0))
        valid = (~mk) & (sub < -650)
        w = (mk | valid).astype(np.float32)
        u = np.where(mk, base, np.where(valid, sub, 0.0)).astype(np.float32)
        for _ in range(iterations):
            uw = u * w
            s = np.zeros_like(u)
            c = np.zeros_like(u)
            s[1:] += uw[:-1]
            c[1:] += w[:-1]
            s[:-1] += uw[1:]
            c[:-1] += w[1:]
            s[:, 1:] += uw[:, :-1]
            c[:, 1:] += w[:, :-1]
            s[:, :-1] += uw[:, 1:]
            c[:, :-1] += w[:, 1:]
            upd = mk & (c > 0)
            u[upd] = s[upd] / c[upd]
        noise = box_mean(rng.standard_normal((1, *sub.shape)).astype(np.float32), 1)[0] * 3.0 * tex
        sub[mk] = u[mk] + noise[mk]
    return vol


