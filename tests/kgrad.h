/* kgrad.h: finite-difference checks of backward functions, for the TAP unit tests.
 *
 * A test wraps its forward in a function returning a scalar loss (typically Σ G·out for a fixed
 * random G, so every output element matters), runs its backward once for the analytic gradient,
 * then compares that gradient with central differences of the loss on a sample of coordinates. */
#ifndef KGRAD_H
#define KGRAD_H

#include <math.h>
#include <string.h>

#include "af.h"
#include "tap.h"

typedef double (*kg_fn)(void *ctx);

/* Fills x with scale·N(0, 1). */
static inline void kg_fill(float *x, size_t n, af_rng *r, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * af_rng_normal(r);
}

/* Σ g·y in double. */
static inline double kg_dot(const float *g, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * y[i];
    return s;
}

/* Compares grad (the analytic gradient of f w.r.t. x[n]) with central differences on up to 48
 * coordinates spread over x; x is restored and f run once more on it. Passes when the relative L2
 * error over the sampled coordinates is below tol. */
static inline int kg_check(const char *what, kg_fn f, void *ctx, float *x, const float *grad,
                           size_t n, float eps, double tol) {
    enum { K = 48 };
    double num = 0, den = 0, an = 0;
    size_t step = n > K ? n / K : 1, worst = 0;
    double worst_d = -1;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double fp = f(ctx);
        x[i] = keep - eps;
        double fm = f(ctx);
        x[i] = keep;
        double fd = (fp - fm) / (2.0 * eps), d = fd - grad[i];
        num += d * d;
        den += fd * fd;
        an += (double)grad[i] * grad[i];
        if (fabs(d) > worst_d) worst_d = fabs(d), worst = i;
    }
    f(ctx); /* leave the caller's state (caches) as for the unperturbed x */
    double scale = sqrt(den > an ? den : an);
    double rel = sqrt(num) / (scale > 1e-12 ? scale : 1e-12);
    int pass = rel < tol && scale > 1e-9;
    if (!pass)
        diag("%s: worst at %zu: analytic %g, |diff| %g; |grad| %g", what, worst, grad[worst],
             worst_d, scale);
    return ok(pass, "%s: finite differences (rel err %.2e)", what, rel);
}

#endif
