/* The fast back end's C kernels (spikeops.gen.llm.fast), loaded through ctypes by kernel.py.

   Built once per process with the system C compiler: -O3 -std=c99 -ffp-contract=off
   -fno-trapping-math (IEEE float arithmetic: no fast-math, no FMA contraction), -march=native when
   the compiler takes it.  The ctypes signatures in kernel.py (_SIGNATURES) must follow every change
   of an argument list here: each function takes (int64 lo, int64 hi, ...) and returns int64. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every function works on the rows [lo, hi) and returns nonzero when it met an input that golden
   rejects (NaN; -inf where no mask code is allowed): the caller then runs golden itself.
   Quantisation (quantize.py, scaled): n = trunc(clamp(x * 2**(frac+1), -lim, lim)) and
   code = (n + (n > 0)) >> 1, exactly spikeops.golden.fixed.quantize's round-half-away for float32 x.
   NaN and -inf are recognised by their bits (integer tests keep the loops vectorisable). */
static inline uint32_t bits(float v) { uint32_t b; memcpy(&b, &v, sizeof b); return b; }
static inline int is_nan(uint32_t b) { return (b & 0x7fffffffu) > 0x7f800000u; }
static inline int is_neg_inf(uint32_t b) { return b == 0xff800000u; }
static inline int32_t half_index(float x, float scale2, float lim) {
    float u = x * scale2;
    u = u >= -lim ? u : -lim;  /* NaN fails the test: any index, the call is rejected */
    u = u > lim ? lim : u;
    return (int32_t)u;
}
static inline int32_t half_code(int32_t n) { return (n + (n > 0)) >> 1; }

/* sigmoid / SiLU / GELU: out = table[n + lim] (the table holds golden's output for code(n)). */
int64_t spikeops_lookup_f32(int64_t lo, int64_t hi, const float *restrict x, float scale2, float lim,
                            const float *restrict table, float *restrict out) {
    int bad = 0;
    const int32_t off = (int32_t)lim;
    for (int64_t i = lo; i < hi; ++i) {
        const uint32_t b = bits(x[i]);
        bad |= is_nan(b) | is_neg_inf(b);
        out[i] = table[half_index(x[i], scale2, lim) + off];
    }
    return bad;
}

/* Softmax, pass 1: m[r] = the largest valid code (min_code when none), s[r] = sum of the valid
   e_j = tab[max(c_j - m + off, 0)] (int64, exact).  Valid: not -inf and (without a mask) or
   valid[vrow[r] + j] != 0 (a broadcast mask is not copied: rows share their mask row). */
int64_t spikeops_softmax_sum_f32(int64_t lo, int64_t hi, const float *restrict x, const uint8_t *restrict valid,
                                 const int64_t *restrict vrow, int64_t L, float scale2, float lim, int64_t min_code,
                                 int64_t off,
                                 const int64_t *restrict tab, int64_t *restrict m_out, int64_t *restrict s_out) {
    int bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * L;
        const uint8_t *vr = valid ? valid + vrow[r] : 0;
        int32_t m = (int32_t)min_code;
        for (int64_t j = 0; j < L; ++j) {  /* masked: pushed 2**30 below every code */
            const int32_t masked = is_neg_inf(bits(xr[j])) | (vr ? vr[j] == 0 : 0);
            const int32_t c = half_code(half_index(xr[j], scale2, lim)) - (masked << 30);
            m = c > m ? c : m;
        }
        const int32_t base = m - (int32_t)off;
        int64_t s = 0;
        for (int64_t j = 0; j < L; ++j) {
            const uint32_t b = bits(xr[j]);
            bad |= is_nan(b);
            const int ok = !is_neg_inf(b) & (vr ? vr[j] != 0 : 1);
            const int32_t k = half_code(half_index(xr[j], scale2, lim)) - base;
            s += tab[ok & (k > 0) ? k : 0];
        }
        m_out[r] = m;
        s_out[r] = s;
    }
    return bad;
}

/* Softmax, pass 2: e_j as in pass 1 (tab[0] = 0 for masked positions) and the Division Neuron
   Group with the row's constants (division.py, row_division):
   out = float(min(floor((floor(e * scale) + beta) / t), qmax) * lsb). */
int64_t spikeops_softmax_out_f32(int64_t lo, int64_t hi, const float *restrict x, const uint8_t *restrict valid,
                                 const int64_t *restrict vrow, int64_t L, float scale2, float lim, int64_t off,
                                 const int64_t *restrict m_in,
                                 const double *restrict tab, const double *restrict scale,
                                 const double *restrict beta, const double *restrict t, double qmax, double lsb,
                                 float *restrict out) {
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * L;
        const uint8_t *vr = valid ? valid + vrow[r] : 0;
        float *orow = out + r * L;
        const int32_t base = (int32_t)m_in[r] - (int32_t)off;
        const double sc = scale[r], be = beta[r], tt = t[r];
        for (int64_t j = 0; j < L; ++j) {
            const uint32_t b = bits(xr[j]);
            const int ok = !is_neg_inf(b) & (vr ? vr[j] != 0 : 1);
            const int32_t k = half_code(half_index(xr[j], scale2, lim)) - base;
            const double e = tab[ok & (k > 0) ? k : 0];
            double q = floor((floor(e * sc) + be) / tt);
            q = q < qmax ? q : qmax;
            orow[j] = (float)(q * lsb);
        }
    }
    return 0;
}

/* RMSNorm / LayerNorm, step 0: v = code (centred: d * code - sum(code)). */
int64_t spikeops_norm_codes_f32(int64_t lo, int64_t hi, const float *restrict x, int64_t d, float scale2,
                                float lim, int64_t centred, int64_t *restrict v) {
    int bad = 0;
    for (int64_t r = lo; r < hi; ++r) {
        const float *xr = x + r * d;
        int64_t *vr = v + r * d, sum = 0;
        for (int64_t j = 0; j < d; ++j) {
            const uint32_t b = bits(xr[j]);
            bad |= is_nan(b) | is_neg_inf(b);
            vr[j] = half_code(half_index(xr[j], scale2, lim));
            sum += vr[j];
        }
        if (centred)
            for (int64_t j = 0; j < d; ++j)
                vr[j] = d * vr[j] - sum;
    }
    return bad;
}

/* golden/norm.py PolarNorm, method "cordic", on block-floating nodes (m, e), n of them in xm/xe
   (room for n + 1): pairs (x[2i], x[2i+1]) in index order, an odd level's last node paired with the
   zero node (0, -width); a merge aligns both to E = max(ea, eb) after a left shift by guard, runs
   `iterations` vectoring steps a += s (b >> k), b -= s (a >> k) with s = sign(b) (+1 for b >= 0),
   written s*y = (y ^ t) - t with t = b >> 63, and normalises a back to width bits. */
static int64_t spikeops_bits(int64_t x) { return x ? 64 - __builtin_clzll((unsigned long long)x) : 0; }

/* golden's _normalised: x >= 0 to width bits (floor), exponent e + t; zero gives (0, -width) */
static void spikeops_node(int64_t x, int64_t e, int64_t width, int64_t *m, int64_t *ex) {
    if (!x) { *m = 0; *ex = -width; return; }
    const int64_t t = spikeops_bits(x) - width;
    *m = t >= 0 ? x >> t : x << -t;
    *ex = e + t;
}

static void spikeops_tree(int64_t *restrict xm, int64_t *restrict xe, int64_t *restrict a, int64_t *restrict b,
                          int64_t *restrict big, int64_t n, int64_t width, int64_t guard, int64_t iterations) {
    int64_t len = n;
    while (len > 1) {
        if (len & 1) { xm[len] = 0; xe[len] = -width; ++len; }
        const int64_t p = len / 2;
        for (int64_t i = 0; i < p; ++i) {  /* align each pair to its larger exponent */
            const int64_t ae = xe[2 * i], be = xe[2 * i + 1], e = ae > be ? ae : be;
            const int64_t sa = e - ae > 63 ? 63 : e - ae, sb = e - be > 63 ? 63 : e - be;
            a[i] = (xm[2 * i] << guard) >> sa;
            b[i] = (xm[2 * i + 1] << guard) >> sb;
            big[i] = e;
        }
        for (int64_t k = 0; k < iterations; ++k) {  /* one step over every pair: vectorises */
            for (int64_t i = 0; i < p; ++i) {
                const int64_t ai = a[i], bi = b[i], t = bi >> 63;
                a[i] = ai + (((bi >> k) ^ t) - t);
                b[i] = bi - (((ai >> k) ^ t) - t);
            }
        }
        for (int64_t i = 0; i < p; ++i)
            spikeops_node(a[i], big[i] - guard, width, &xm[i], &xe[i]);
        len = p;
    }
}

/* golden/ops/norms.py norm_leaves then cordic_root, row by row: leaf 0 is the eps node; then
   RMSNorm's |x_j| (helmert = 0; x = v), or LayerNorm's Helmert contrasts |j x_j - S_j| (S_j the
   sum before x_j) times the constant node (cm[j], ce[j]), j >= 1 (helmert = 1), from the centred
   rows v = d x - sum(x): j x_j - S_j = (j v_j - V_j) / d exactly (V_j the sum of v before v_j). */
int64_t spikeops_norm_root(int64_t lo, int64_t hi, const int64_t *restrict x, int64_t d, int64_t eps,
                           int64_t helmert, const int64_t *restrict cm, const int64_t *restrict ce, int64_t width,
                           int64_t guard, int64_t iterations, int64_t *restrict out_m, int64_t *restrict out_e) {
    const int64_t half = d / 2 + 2;
    int64_t *work = malloc(sizeof(int64_t) * (size_t)(2 * (d + 2) + 3 * half));
    if (!work) return 1;
    int64_t *restrict xm = work, *restrict xe = work + d + 2;
    int64_t *restrict a = xe + d + 2, *restrict b = a + half, *restrict big = b + half;
    for (int64_t r = lo; r < hi; ++r) {
        const int64_t *row = x + r * d;
        int64_t n = 1;
        spikeops_node(eps, 0, width, &xm[0], &xe[0]);
        if (helmert) {
            int64_t s = row[0];
            for (int64_t j = 1; j < d; ++j, ++n) {
                const int64_t c = (j * row[j] - s) / d;
                int64_t m, e;
                s += row[j];
                spikeops_node(c < 0 ? -c : c, 0, width, &m, &e);
                if (!m) { xm[n] = 0; xe[n] = -width; continue; }
                spikeops_node(m * cm[j], e + ce[j], width, &xm[n], &xe[n]);
            }
        } else {
            for (int64_t j = 0; j < d; ++j, ++n)
                spikeops_node(row[j] < 0 ? -row[j] : row[j], 0, width, &xm[n], &xe[n]);
        }
        spikeops_tree(xm, xe, a, b, big, n, width, guard, iterations);
        out_m[r] = xm[0];
        out_e[r] = xe[0];
    }
    free(work);
    return 0;
}

/* RMSNorm / LayerNorm, step 4: p = v_j * g_j (exact), q = min(floor((floor(|p| * scale) + beta) / t),
   qmax), y = sign(p) q (+0.0: golden's integer -0 is 0), y = clip(y + bo_j) when bo, out = y * lsb. */
int64_t spikeops_norm_out_f32(int64_t lo, int64_t hi, const int64_t *restrict v, int64_t d,
                              const double *restrict g, const double *restrict bo, const double *restrict scale,
                              const double *restrict beta, const double *restrict t, double qmax, double ymin,
                              double ymax, double lsb, float *restrict out) {
    for (int64_t r = lo; r < hi; ++r) {
        const double sc = scale[r], b = beta[r], tt = t[r];
        const int64_t *vr = v + r * d;
        float *orow = out + r * d;
        for (int64_t j = 0; j < d; ++j) {
            const double p = (double)vr[j] * g[j];
            double q = floor((floor(fabs(p) * sc) + b) / tt);
            q = q < qmax ? q : qmax;
            double y = copysign(q, p) + 0.0;
            if (bo) {
                y += bo[j];
                y = y < ymin ? ymin : (y > ymax ? ymax : y);
            }
            orow[j] = (float)(y * lsb);
        }
    }
    return 0;
}
