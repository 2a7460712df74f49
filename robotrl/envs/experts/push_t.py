"""Scripted expert for ``robotrl/PushT-v0``.

Strategy (re-planned every control step from ``obs["state"]``):

1. For 18 candidate contacts on the T's edges (block frame), predict the block twist that a
   push along the inward normal causes, with the quasi-static ellipsoidal limit-surface model
   that matches the block's joint damping (``v ~ n``, ``w ~ (r x n) / c^2``, normalised so the
   contact point advances at the push speed).
2. Score each by the best reduction of ``J = |p - g|^2 + (0.05 m/rad)^2 * yaw_err^2`` along that
   push, divided by the travel needed to get there. Keep the current push while it still helps
   (hysteresis), otherwise commit to the best candidate.
3. Walk to the candidate's pre-contact point: straight if the path is clear of the (inflated)
   T, otherwise back out radially and orbit the block at a safe radius.
4. Push: track the contact point in the block frame and press ``depth`` past it, with the depth
   shrinking as the predicted optimal push distance shrinks (precise final adjustments).

``suboptimal=True``: moves at half speed, and in about half of the episodes (drawn from the
expert's RNG) aims at a wrong final pose (goal shifted by 3.5 cm and rotated by 0.35 rad,
beyond the success tolerance), so those episodes mostly fail.
"""

from __future__ import annotations

import numpy as np

from robotrl.envs.bundled.push_t import (
    BLOCK_C2,
    PUSHER_RADIUS,
    T_BAR,
    T_STEM,
    WORKSPACE,
    t_sdf,
    wrap_angle,
)
from robotrl.envs.experts.base import ScriptedExpert

_Y_TOP = T_BAR[1] + T_BAR[3]
_Y_BAR_BOTTOM = T_BAR[1] - T_BAR[3]
_Y_STEM_BOTTOM = T_STEM[1] - T_STEM[3]
_X_END = T_BAR[2]
_X_STEM = T_STEM[2]


def _candidates() -> np.ndarray:
    c = [(x, _Y_TOP, 0.0, -1.0) for x in (-0.05, -0.03, 0.0, 0.03, 0.05)]
    c += [(x, _Y_BAR_BOTTOM, 0.0, 1.0) for x in (-0.045, 0.045)]
    c += [(-_X_END, T_BAR[1], 1.0, 0.0), (_X_END, T_BAR[1], -1.0, 0.0)]
    for y in (-0.065, -0.04, -0.015):
        c += [(-_X_STEM, y, 1.0, 0.0), (_X_STEM, y, -1.0, 0.0)]
    c += [(x, _Y_STEM_BOTTOM, 0.0, 1.0) for x in (-0.01, 0.0, 0.01)]
    return np.array(c)


_CANDS = _candidates()
_W_YAW = 0.05**2  # m^2 per rad^2 in the pose cost
_PRE_GAP = 0.012  # pre-contact clearance (m)
_ORBIT_R = 0.12  # safe orbit radius around the block's centre of mass
_STEP = 0.035  # max set-point move per control step (m)
_CLEAR = PUSHER_RADIUS + 0.004


def _rot(th: float) -> np.ndarray:
    c, s = np.cos(th), np.sin(th)
    return np.array([[c, -s], [s, c]])


class PushTExpert(ScriptedExpert):
    """Greedy model-based pusher for PushT (see module docstring)."""

    def _reset(self) -> None:
        self._cand: int | None = None
        self._pushing = False
        self._speed = 0.5 if self.suboptimal else 1.0
        self._goal_offset = np.zeros(3)
        if self.suboptimal and self.rng.random() < 0.5:
            ang = self.rng.uniform(-np.pi, np.pi)
            self._goal_offset = np.array(
                [0.035 * np.cos(ang), 0.035 * np.sin(ang), 0.35 * self.rng.choice([-1.0, 1.0])]
            )

    def _clear(self, p: np.ndarray, q: np.ndarray, b: np.ndarray, rot: np.ndarray) -> bool:
        s = np.linspace(0.0, 1.0, 12)[:, None]
        pts = (p + s * (q - p) - b) @ rot  # world -> block frame
        return bool(np.all(t_sdf(pts) >= _CLEAR))

    def _act(self, state: np.ndarray) -> np.ndarray:
        p = state[0:2]
        b = state[4:6]
        th = float(np.arctan2(state[7], state[6]))
        g = state[11:13] + self._goal_offset[:2]
        gth = float(np.arctan2(state[14], state[13])) + self._goal_offset[2]
        rot = _rot(th)
        e_p = b - g
        e_th = float(wrap_angle(th - gth))

        r, n = _CANDS[:, :2], _CANDS[:, 2:]
        tau = r[:, 0] * n[:, 1] - r[:, 1] * n[:, 0]
        den = 1.0 + tau**2 / BLOCK_C2
        v_w = (n / den[:, None]) @ rot.T
        om = tau / BLOCK_C2 / den
        dj = 2.0 * v_w @ e_p + 2.0 * _W_YAW * e_th * om  # dJ/d(push distance)
        qj = np.sum(v_w**2, axis=1) + _W_YAW * om**2
        dstar = np.maximum(-dj / (2.0 * qj), 0.0)
        gain = np.where(dj < 0, dj**2 / (4.0 * qj), 0.0)
        c_w = b + r @ rot.T
        n_w = n @ rot.T
        contact_pos = c_w - n_w * PUSHER_RADIUS  # pusher centre touching the contact
        pre = c_w - n_w * (PUSHER_RADIUS + _PRE_GAP)

        travel = np.linalg.norm(pre - p, axis=1)
        score = gain / (travel + np.minimum(dstar, 0.1) + 0.03)
        best = int(np.argmax(score))

        i = self._cand
        if i is not None and self._pushing:
            cur_score = gain[i] / (np.minimum(dstar[i], 0.1) + 0.03)
            if dj[i] >= 0 or dstar[i] < 1e-3 or score[best] > 2.0 * cur_score:
                i = None
        elif i is not None and dj[i] >= 0:
            i = None
        if i is None:
            i = best
            self._pushing = False
        self._cand = i

        if self._pushing:
            rel = p - contact_pos[i]
            along = float(rel @ n_w[i])
            lateral = float(np.linalg.norm(rel - along * n_w[i]))
            if lateral > 0.012 or along < -0.03:
                self._pushing = False
        if not self._pushing and np.linalg.norm(p - pre[i]) < 0.006:
            self._pushing = True

        step = _STEP * self._speed
        if self._pushing:
            depth = float(np.clip(0.5 * dstar[i], 0.003, 0.02)) * self._speed
            target = contact_pos[i] + n_w[i] * depth
        elif self._clear(p, pre[i], b, rot):
            target = p + _clip_norm(pre[i] - p, step)
        else:
            rel = p - b
            rad = float(np.linalg.norm(rel))
            phi = float(np.arctan2(rel[1], rel[0]))
            phi_t = float(np.arctan2(pre[i][1] - b[1], pre[i][0] - b[0]))
            dphi = float(wrap_angle(phi_t - phi))
            if rad < _ORBIT_R - 0.01:
                target = b + rel / max(rad, 1e-6) * min(rad + step, _ORBIT_R)
            elif abs(dphi) < 0.05:
                target = p + _clip_norm(pre[i] - p, step)
            else:
                phi_n = phi + float(np.clip(dphi, -step / _ORBIT_R, step / _ORBIT_R))
                target = b + _ORBIT_R * np.array([np.cos(phi_n), np.sin(phi_n)])
        return np.clip(target, -0.29, 0.29) / WORKSPACE


def _clip_norm(v: np.ndarray, max_norm: float) -> np.ndarray:
    nrm = float(np.linalg.norm(v))
    return v if nrm <= max_norm else v * (max_norm / nrm)
