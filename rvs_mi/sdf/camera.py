"""Sensor projection x -> u (film pixels) and its derivatives, for the warp.

The warp needs ∂x u (Eq. 6-7) at every tracer point, its directional
derivatives (for the divergence), and rays as functions of u with their
u-derivatives (the sphere tracer's points move with u). Perspective and
orthographic sensors are both projective maps

    h = K · [x, 1],   u_a = c_a · h_a / h_w   (a = 0, 1)

with K = projection_transform · world_to_camera and c = crop size, so one
set of formulas serves both. u is measured in pixels of the crop window
(Mitsuba's ``sample2 = u / crop_size``).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError

SUPPORTED = ("PerspectiveCamera", "OrthographicCamera")


class Projection:
    """Projective camera model of one sensor: the 4x4 matrix K and its inverse as Dr.Jit
    values of width 1 (``K[i][j]``, ``Kinv[i][j]``)."""

    def __init__(self, K, crop_size, perspective: bool):
        """``K``: a 4x4 matrix (NumPy, nested lists, or a ``Matrix4f64`` of width 1)."""
        import drjit as dr
        import mitsuba as mi
        M64 = dr.llvm.ad.Matrix4f64 if dr.backend_v(mi.Float) == dr.JitBackend.LLVM else dr.cuda.ad.Matrix4f64
        if not isinstance(K, M64):
            # Opaque entries: the matrix is a kernel input, not a literal baked into
            # the code, so every view of a multi-view optimization reuses one kernel.
            K = M64([[dr.opaque(dr.float64_array_t(mi.Float), float(v)) for v in row]
                     for row in np.asarray(K, dtype=np.float64)])
        Kinv = dr.rcp(K)                      # in double precision, rounded once to float32
        self.K = [[mi.Float(K[i][j]) for j in range(4)] for i in range(4)]
        self.Kinv = [[mi.Float(Kinv[i][j]) for j in range(4)] for i in range(4)]
        self.crop = (float(crop_size[0]), float(crop_size[1]))
        self.perspective = perspective

    @staticmethod
    def from_sensor(sensor) -> "Projection":
        """The projection of a Mitsuba perspective/orthographic sensor.

        K = projection_transform · world_transform⁻¹, computed from the sensor's own Dr.Jit
        matrices (no values read back to the host), so that a frozen step that renders
        another view reads that view's matrices.
        (A sparse-pixel renderer can build one Projection per *source* sensor
        and evaluate the warp in that sensor's pixel coordinates.)
        """
        import drjit as dr
        import mitsuba as mi
        name = sensor.class_name()
        if name not in SUPPORTED:
            raise UserError(f"sdf integrators support perspective and orthographic sensors "
                            f"(got {name})")
        M64 = dr.llvm.ad.Matrix4f64 if dr.backend_v(mi.Float) == dr.JitBackend.LLVM else dr.cuda.ad.Matrix4f64
        P = M64(dr.detach(sensor.projection_transform().matrix))
        W = M64(dr.detach(sensor.world_transform().matrix))
        return Projection(P @ dr.rcp(W), sensor.film().crop_size(), name == "PerspectiveCamera")

    # ---------------------------------------------------------------- helpers
    def _row(self, M, i):
        import mitsuba as mi
        return mi.Vector3f(M[i][0], M[i][1], M[i][2]), M[i][3]

    def _apply(self, M, x):
        """Homogeneous components (h0, h1, h2, h3) of M·[x, 1]."""
        import drjit as dr
        out = []
        for i in range(4):
            r, c = self._row(M, i)
            out.append(dr.dot(r, x) + c)
        return out

    # ------------------------------------------------------------------ rays
    def _unproject(self, s, z):
        """(h, p): homogeneous h = K⁻¹ · [s_x, s_y, z, 1] and p = h_xyz / h_w (s = u / crop)."""
        import mitsuba as mi
        Ki = self.Kinv
        h = [Ki[i][0] * s.x + Ki[i][1] * s.y + (Ki[i][2] * z + Ki[i][3]) for i in range(4)]
        return h, mi.Vector3f(h[0], h[1], h[2]) / h[3]

    def ray(self, u):
        """Ray through pixel position u: (o, d, do/du_x, do/du_y, dd/du_x, dd/du_y).

        o lies on the near plane, d is unit length. The u-derivatives are exact
        (the map is linear in homogeneous coordinates, then divided and normalized).
        """
        import drjit as dr
        import mitsuba as mi
        s = mi.Vector2f(u.x / self.crop[0], u.y / self.crop[1])
        Ki = self.Kinv

        def unproject(z):
            # dh/ds_a = column a of K⁻¹
            h, p = self._unproject(s, z)
            dps = []
            for a in range(2):
                dh = mi.Vector3f(Ki[0][a], Ki[1][a], Ki[2][a])
                dw = Ki[3][a]
                dps.append((dh - p * dw) / h[3] / self.crop[a])
            return p, dps

        p0, dp0 = unproject(0.0)
        p1, dp1 = unproject(1.0)
        v = p1 - p0
        n = dr.norm(v)
        d = v / n
        dd = []
        for a in range(2):
            dv = dp1[a] - dp0[a]
            dd.append((dv - d * dr.dot(d, dv)) / n)
        return p0, d, dp0[0], dp0[1], dd[0], dd[1]

    def ray_simple(self, u):
        """(o, d) only, differentiable in u through Dr.Jit AD (for the warped ray)."""
        import drjit as dr
        import mitsuba as mi
        s = mi.Vector2f(u.x / self.crop[0], u.y / self.crop[1])
        p0, p1 = self._unproject(s, 0.0)[1], self._unproject(s, 1.0)[1]
        return p0, dr.normalize(p1 - p0), dr.norm(p1 - p0)

    # ------------------------------------------------------------ projection
    def project(self, x):
        """Pixel position u(x)."""
        import mitsuba as mi
        h = self._apply(self.K, x)
        return mi.Vector2f(self.crop[0] * h[0] / h[3], self.crop[1] * h[1] / h[3])

    def jacobian(self, x):
        """(J_0, J_1): J_a = ∇_x u_a (3-vectors), i.e. the columns of ∂x u (Eq. 6)."""
        h = self._apply(self.K, x)
        Kw, _ = self._row(self.K, 3)
        J = []
        for a in range(2):
            Ka, _ = self._row(self.K, a)
            J.append(self.crop[a] * (Ka - (h[a] / h[3]) * Kw) / h[3])
        return J

    def jacobian_derivative(self, x, J, v):
        """Directional derivatives D J_a(x)[v] of the Jacobian columns along v."""
        import drjit as dr
        h = self._apply(self.K, x)
        Kw, _ = self._row(self.K, 3)
        kv = dr.dot(Kw, v) / h[3]
        out = []
        for a in range(2):
            # J_a = c_a (K_a − (h_a/h_w) K_w)/h_w ;  D(h_a/h_w)[v] = (J_a·v)/c_a
            out.append(-(dr.dot(J[a], v)) * Kw / h[3] - J[a] * kv)
        return out
