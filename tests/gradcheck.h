/* gradcheck.h: finite-difference checks of analytic gradients, for the TAP tests.
 *
 * loss(ctx) must be a deterministic scalar function of the parameter array being checked (reseed
 * any RNG inside it). Each sampled entry is perturbed by ±eps and the central difference compared
 * with the analytic gradient; the error is ‖fd − g‖ / max(‖g‖, floor) over the sampled entries, so
 * one wrong entry among many still fails while float32 rounding in a single entry does not. */
#ifndef GRADCHECK_H
#define GRADCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef double (*gc_loss_fn)(void *ctx);

/* Returns the relative error; entries are all of [0, n) when n <= nsample, else a fixed stride. */
static inline double gc_check(float *param, const float *grad, size_t n, size_t nsample, float eps,
                              gc_loss_fn loss, void *ctx) {
    double num = 0, den = 0;
    size_t step = n <= nsample ? 1 : n / nsample;
    size_t off = n <= nsample ? 0 : (step / 2);
    for (size_t i = off; i < n; i += step) {
        float keep = param[i];
        param[i] = keep + eps;
        double lp = loss(ctx);
        param[i] = keep - eps;
        double lm = loss(ctx);
        param[i] = keep;
        /* the true step, as rounded in float */
        double fd = (lp - lm) / ((double)(keep + eps) - (double)(keep - eps));
        double d = fd - grad[i];
        num += d * d;
        den += (double)grad[i] * grad[i];
    }
    double floor = 1e-6 * (double)(n <= nsample ? n : nsample);
    return sqrt(num) / sqrt(den > floor ? den : floor);
}

/* Σ out ⊙ w in double: the scalar whose gradient with respect to out is w. */
static inline double gc_dot(const float *out, const float *w, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

#endif
