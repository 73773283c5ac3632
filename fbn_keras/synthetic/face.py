"""The face as a function of 17 AU intensities: each AU's FACS deformation.

Face coordinates: origin at the face centre, y down, pixels at scale 1; the
eyes sit on y = −8, the brows near −17, the lip line at `Identity.mouth_y`.
"""

from __future__ import annotations

import numpy as np

from fbn_keras import taxonomy
from fbn_keras.synthetic.appearance import Identity
from fbn_keras.synthetic.draw import DARK, Canvas, ellipse, mix, quad, stroke

def _au(intensities: np.ndarray) -> dict[int, float]:
    return {au: float(v) for au, v in zip(taxonomy.AUS, intensities)}


def _draw_head(cv: Canvas, idn: Identity, a: dict[int, float]) -> float:
    """Hair behind, neck, shoulders, ears, the face outline; returns the chin's y.
    AU26 drops the jaw (chin down), AU17 pushes the chin boss up."""
    w, h = idn.face_w, idn.face_h
    skin = np.asarray(idn.skin)
    chin = h + 7.0 * a[26] - 2.5 * a[17]
    if idn.hair_style == "long":
        cv.fill(np.concatenate([ellipse(0, -4, w + idn.hair_volume + 2, h + idn.hair_volume, 30, np.pi, 2 * np.pi),
                                [[w + idn.hair_volume + 3, 45], [-w - idn.hair_volume - 3, 45]]]), idn.hair)
    cv.fill(np.array([[-0.42 * w, 10], [0.42 * w, 10], [0.5 * w, 60], [-0.5 * w, 60]]), tuple(skin * 0.82))
    cv.fill(ellipse(0, h + 24, 50, 16, 30), idn.clothes)
    for sgn in (-1, 1):
        cv.fill(ellipse(sgn * (w + 0.5), -5, 3.2, 6.5, 16), tuple(skin * 0.9))
    t_top = np.linspace(np.pi, 2 * np.pi, 16)
    t_low = np.linspace(0.0, np.pi, 20)[1:-1]
    top = np.stack([w * np.cos(t_top), 1.02 * h * np.sin(t_top)], axis=1)
    low = np.stack([w * np.cos(t_low) * (1 - idn.jaw * np.sin(t_low) ** 2), chin * np.sin(t_low)], axis=1)
    cv.fill(np.concatenate([top, low]), idn.skin)
    if idn.hair_style in ("short", "cap", "long", "fringe"):
        v = 1.2 if idn.hair_style == "short" else idn.hair_volume
        line_y = -31.5 if idn.hair_style != "cap" else -30.0
        outer = ellipse(0, 0, w + v, 1.02 * h + v, 22, np.pi - 0.05, 2 * np.pi + 0.05)
        inner = np.concatenate([[[w * 0.98, -13]], quad((w * 0.8, line_y + 3), (0, line_y), (-w * 0.8, line_y + 3), 9),
                                [[-w * 0.98, -13]]])
        cv.fill(np.concatenate([outer, inner]), idn.hair)
        if idn.hair_style == "fringe":
            cv.fill(np.array([[-w * 0.9, -20], [-w * 0.7, line_y - 1], [w * 0.4, line_y - 1]]), idn.hair)
    return chin


def _draw_brows(cv: Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU1 raises the inner brow (+ central forehead wrinkles), AU2 the outer brow (+ lateral
    wrinkles), AU4 lowers the brows and pulls them together (+ vertical glabella furrows)."""
    skin, color = np.asarray(idn.skin), mix(idn.hair, DARK, 0.4)
    e = idn.eye_sep
    for sgn in (-1, 1):
        inner = (sgn * (e - 6.5 - 2.5 * a[4]), -17.0 - 5.5 * a[1] + 4.0 * a[4])
        mid = (sgn * (e + 0.5), -19.5 - 2.5 * a[1] - 3.5 * a[2] + 3.0 * a[4])
        outer = (sgn * (e + 8.0), -17.5 - 0.5 * a[1] - 5.5 * a[2] + 2.0 * a[4])
        cv.fill(stroke(quad(inner, mid, outer, 10), np.linspace(idn.brow_w, 0.6 * idn.brow_w, 10)), color)
        if a[2] > 0.05:
            for k, y in enumerate((-25.0, -28.0)):
                xs = sgn * np.array([e + 1.0, e + 5.0, e + 9.0 - k])
                cv.line(np.stack([xs, [y + 0.8, y, y + 0.8]], axis=1), mix(skin, DARK, 0.5 * a[2]), 0.9)
    if a[1] > 0.05:
        for y in (-24.5, -27.5):
            cv.line(quad((-6.5, y + 0.8), (0, y), (6.5, y + 0.8), 7), mix(skin, DARK, 0.5 * a[1]), 0.9)
    if a[4] > 0.05:
        for sgn in (-1, 1):
            cv.line(np.array([[sgn * 1.8, -20.0], [sgn * 1.4, -13.5]]), mix(skin, DARK, 0.6 * a[4]), 1.0)


def _draw_eyes(cv: Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU5 raises the upper lid (white above the iris, crease gone), AU6 raises the cheeks and
    lower lid (+ crow's feet), AU7 tightens both lids (+ a tense line under the lower lid)."""
    skin = np.asarray(idn.skin)
    s = idn.eye_size
    ew = 6.0 * s
    hu = max(0.5, (3.2 + 3.4 * a[5] - 1.9 * a[7] - 0.7 * a[6]) * s)
    hl = max(0.35, (2.3 - 1.3 * a[6] - 1.3 * a[7] + 0.3 * a[5]) * s)
    u = np.linspace(-1.0, 1.0, 13)
    f = 1 - u ** 2
    for sgn in (-1, 1):
        cx, cy = sgn * idn.eye_sep, -8.0
        x = cx + u * ew
        upper, lower = cy - hu * f ** 0.75, cy + hl * f ** 0.9
        cv.fill(np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]]), (245, 243, 238))
        for r, color in ((2.4 * s, idn.iris), (1.1 * s, (15, 12, 12))):
            ring = ellipse(cx, cy + 0.4, r, r, 16)
            rx = np.minimum(np.maximum(ring[:, 0], x[0]), x[-1])   # (np.clip is slow on tiny arrays)
            ring[:, 1] = np.minimum(np.maximum(ring[:, 1], np.interp(rx, x, upper)), np.interp(rx, x, lower))
            cv.fill(ring, color)
        cv.line(np.stack([x, upper], 1), (30, 22, 22), 1.1)
        cv.line(np.stack([x, lower], 1), mix(skin, DARK, 0.35), 0.6)
        cv.line(np.stack([x[2:-2], upper[2:-2] - 1.8], 1), mix(skin, DARK, 0.3 * (1 - a[5])), 0.6)
        if a[7] > 0.05:
            cv.line(np.stack([x[3:-3], lower[3:-3] + 1.4], 1), mix(skin, DARK, 0.9 * a[7]), 0.9)
        if a[6] > 0.05:
            for k in (-1, 0, 1):
                cv.line(np.array([[cx + sgn * (ew + 1.0), cy + 0.6 * k], [cx + sgn * (ew + 4.5), cy + 2.2 * k]]),
                        mix(skin, DARK, 0.75 * a[6]), 0.8)


def _draw_cheeks(cv: Canvas, idn: Identity, a: dict[int, float]) -> None:
    """Cheek apples: AU6 lifts them and makes them fuller."""
    for sgn in (-1, 1):
        cv.fill(ellipse(sgn * (idn.eye_sep + 2.5), 5.0 - 4.5 * a[6], 6.0, 4.0 + 0.5 * a[6], 18),
                mix(idn.skin, (225, 105, 105), 0.08 + 0.5 * a[6]))


def _draw_nose(cv: Canvas, idn: Identity, a: dict[int, float]) -> None:
    """AU9 wrinkles the nose bridge and lifts/flares the nostrils; AU9, AU10 and AU12 deepen
    the nasolabial folds (AU10 most)."""
    skin, nw, yn = np.asarray(idn.skin), idn.nose_w, idn.nose_len
    lift = 1.6 * a[9] + 0.6 * a[10]
    for sgn in (-1, 1):
        cv.line(np.array([[sgn * 2.6, -6.0], [sgn * 3.3 * nw, yn - 2.5]]), mix(skin, DARK, 0.15), 0.8)
        cv.fill(ellipse(sgn * 2.5 * nw, yn + 1.0 - lift, (1.4 + 0.6 * a[9]) * nw, 0.9, 12), mix(skin, DARK, 0.7))
        cv.line(quad((sgn * 4.0 * nw, yn - 1.5 - lift), (sgn * 4.6 * nw, yn + 0.3 - lift),
                      (sgn * 3.0 * nw, yn + 1.9 - lift), 7), mix(skin, DARK, 0.3 + 0.3 * a[9]), 0.8)
        fold = 0.55 * a[10] + 0.2 * a[9] + 0.25 * a[12]
        mw = idn.mouth_w
        if fold > 0.06:
            start = (sgn * (4.6 * nw + 0.6), yn - 0.5 - lift)
            mid = (sgn * (mw + 2.5 + 1.5 * a[12]), idn.mouth_y - 3.0)
            end = (sgn * (mw + 2.5 + 2.0 * a[12] + 1.5 * a[20]), idn.mouth_y + 3.5)
            cv.line(quad(start, mid, end, 9), mix(skin, DARK, fold), 1.0)
    if a[9] > 0.05:
        for y in (-4.5, -2.5, -0.5):
            cv.line(quad((-3.2, y + 0.4), (0, y - 0.3), (3.2, y + 0.4), 6), mix(skin, DARK, 0.65 * a[9]), 0.8)


def _draw_mouth(cv: Canvas, idn: Identity, a: dict[int, float], chin: float) -> None:
    """AU12 corners up and out, AU15 corners down (+ marionette lines), AU14 dimples, AU20
    stretched thin lips (+ lateral folds), AU23 thin tight lips (+ vertical lip lines), AU24
    pressed lips (+ bulges above and below), AU10 upper lip raised (upper teeth show), AU25 lips
    apart, AU26 jaw down (wider opening), AU17 chin boss up (+ chin dimpling, mentolabial crease)."""
    skin, lip = np.asarray(idn.skin), np.asarray(idn.lip)
    ym = idn.mouth_y
    w = idn.mouth_w + 2.5 * a[12] + 4.5 * a[20] - 1.8 * a[23] - 1.2 * a[24] - 1.3 * a[14]
    cdy = -4.5 * a[12] + 4.0 * a[15] + 0.6 * a[20] - 0.8 * a[14]
    thin = max(0.3, 1 - 0.35 * a[20] - 0.55 * a[23] - 0.45 * a[24])
    tu, tl = idn.lip_t * thin, idn.lip_t * 1.3 * thin
    gap = (2.6 * a[25] + 3.0 * a[26] + 2.5 * a[25] * a[26]) * (1 - 0.7 * a[24]) * (1 - 0.4 * a[17])
    lift = 2.8 * a[10]
    u = np.linspace(-1.0, 1.0, 17)
    x = u * w
    c = 1 - u ** 2
    y_ui = ym + cdy * u ** 2 - (gap / 2 + lift) * c ** 0.6
    y_li = ym + cdy * u ** 2 + (gap / 2) * c ** 0.6
    y_uo = y_ui - tu * np.sqrt(c) * (1 - 0.3 * np.exp(-(u / 0.15) ** 2)) - 0.5 * lift * c
    y_lo = y_li + tl * c ** 0.6
    pts = lambda ys: np.stack([x, ys], axis=1)  # noqa: E731
    if gap + lift > 0.2:
        cv.fill(np.concatenate([pts(y_ui), pts(y_li)[::-1]]), (75, 25, 30))
        teeth_low = np.minimum(y_ui + 2.2, y_li)
        k = slice(3, -3)
        cv.fill(np.concatenate([pts(y_ui)[k], pts(teeth_low)[k][::-1]]), (238, 235, 225))
        if a[26] > 0.2 and gap > 2.0:
            cv.fill(np.concatenate([pts(np.maximum(y_li - 1.2 * a[26], teeth_low))[k], pts(y_li)[k][::-1]]),
                    (225, 222, 212))
    lip = np.asarray(mix(lip, DARK, 0.6 * a[23]))    # AU23: tightened lips darken
    lip = np.asarray(mix(lip, skin, 0.5 * a[24]))     # AU24: pressed lips pale
    cv.fill(np.concatenate([pts(y_uo), pts(y_ui)[::-1]]), tuple(lip * 0.92))
    cv.fill(np.concatenate([pts(y_li), pts(y_lo)[::-1]]), tuple(lip))
    cv.line(pts(0.5 * (y_ui + y_li)) if gap + lift <= 0.2 else pts(y_ui), mix(lip, DARK, 0.55), 0.7)
    corner = np.array([w, ym + cdy])
    for sgn in (-1, 1):
        cx, cy = sgn * corner[0], corner[1]
        if a[14] > 0.05:
            t0 = -1.1 if sgn > 0 else np.pi - 1.1
            cv.line(ellipse(cx, cy, 2.2, 3.0, 7, t0, t0 + 2.2), mix(skin, DARK, 0.8 * a[14]), 1.5)
            cv.fill(ellipse(cx + sgn * 2.8, cy, 1.1, 1.8, 10), mix(skin, DARK, 0.65 * a[14]))
        if a[15] > 0.05:
            cv.line(np.array([[cx + sgn * 0.3, cy + 0.8], [cx + sgn * 1.2, cy + 6.0]]), mix(skin, DARK, 0.6 * a[15]), 1.0)
        if a[20] > 0.05:
            cv.line(np.array([[cx + sgn * 1.0, cy], [cx + sgn * 6.5, cy + 0.8]]), mix(skin, DARK, 0.75 * a[20]), 0.9)
    if a[23] > 0.05:
        dark = mix(lip, DARK, 0.6 * a[23])
        cv.line(pts(y_uo), dark, 0.6)
        cv.line(pts(y_lo), dark, 0.6)
        for i in (4, 6, 8, 10, 12):
            cv.line(np.array([[x[i], y_uo[i] + 0.3], [x[i], y_lo[i] - 0.3]]), dark, 0.6)
    if a[24] > 0.05:
        k = slice(2, -2)
        cv.line(pts(y_uo - 1.8)[k], mix(skin, DARK, 0.35 * a[24]), 1.0)
        cv.line(pts(y_lo + 1.8)[k], mix(skin, DARK, 0.45 * a[24]), 1.0)
    bottom = float(y_lo[8])
    cv.line(quad((-5.0, bottom + 2.6), (0, bottom + 3.6), (5.0, bottom + 2.6), 7),
            mix(skin, DARK, 0.12 + 0.5 * a[17]), 1.0)
    if a[17] > 0.05:
        boss_y = 0.5 * (bottom + 3.6 + chin) + 1.0
        cv.fill(ellipse(0, boss_y, 6.0, 3.2, 16), mix(skin, DARK, 0.2 * a[17]))
        for dx, dy in ((-3, -0.8), (0, -1.2), (3, -0.8), (-1.5, 0.8), (1.5, 0.8)):
            cv.fill(ellipse(dx, boss_y + dy, 0.6, 0.6, 8), mix(skin, DARK, 0.5 * a[17]))


def draw_face(cv: Canvas, idn: Identity, intensities: np.ndarray) -> None:
    """Record the whole face of `idn` showing `intensities` (taxonomy.AUS order) on `cv`."""
    a = _au(intensities)
    chin = _draw_head(cv, idn, a)
    _draw_cheeks(cv, idn, a)
    _draw_brows(cv, idn, a)
    _draw_eyes(cv, idn, a)
    _draw_nose(cv, idn, a)
    _draw_mouth(cv, idn, a, chin)
