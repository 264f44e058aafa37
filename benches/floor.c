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
    job_t *j = (job_t *)p;
    const float a1 = 1.0f - j->b1, a2 = 1.0f - j->b2;
    for (size_t i = j->lo; i < j->hi; i++) {
        float g = j->g[i];
        float m = j->b1 * j->m[i] + a1 * g;
        float v = j->b2 * j->v[i] + a2 * g * g;
        j->m[i] = m;
        j->v[i] = v;
        j->x[i] -= j->eta * (m / j->c1) / (sqrtf(v / j->c2) + j->eps);
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
