/* The one-pass traffic floor of W4: Adam over float32 arrays in a single sweep that
 * reads x, g, m, v and writes x, m, v (4 reads, 3 writes per element), split over
 * `threads` pthreads. Built by benches/floor.py with the system C compiler. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>

typedef struct {
    float *x, *m, *v;
    const float *g;
    size_t lo, hi;
    float eta, b1, b2, eps, c1, c2;
} job_t;

static void *run(void *p) {
    const job_t *j = (const job_t *)p;
    /* restrict-qualified locals so the compiler vectorises without alias checks;
     * reciprocals turn two of the divisions into products (a floor may be this fast) */
    float *restrict x = j->x, *restrict m = j->m, *restrict v = j->v;
    const float *restrict g = j->g;
    const float b1 = j->b1, b2 = j->b2, a1 = 1.0f - b1, a2 = 1.0f - b2;
    const float s1 = j->eta / j->c1, r2 = 1.0f / j->c2, eps = j->eps;
    for (size_t i = j->lo; i < j->hi; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + a1 * gi;
        float vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        x[i] -= s1 * mi / (sqrtf(vi * r2) + eps);
    }
    return NULL;
}

void adam_floor(float *x, const float *g, float *m, float *v, size_t n, int threads,
                float eta, float b1, float b2, float eps, float c1, float c2) {
    pthread_t tid[64];
    job_t jobs[64];
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    size_t chunk = (n + threads - 1) / threads;
    for (int t = 0; t < threads; t++) {
        size_t lo = t * chunk, hi = lo + chunk < n ? lo + chunk : n;
        jobs[t] = (job_t){x, m, v, g, lo < n ? lo : n, hi, eta, b1, b2, eps, c1, c2};
        if (t > 0) pthread_create(&tid[t], NULL, run, &jobs[t]);
    }
    run(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
}
