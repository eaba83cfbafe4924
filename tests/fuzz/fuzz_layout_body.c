/*
 * The layout fuzz harness (fuzz_layout.c under libFuzzer, test_fuzz_layout
 * over deterministic random inputs): arbitrary bytes decoded into explicit
 * image layouts, wrap descriptions and pool configs, given to
 * fp_image_new_layout, fp_image_wrap, fp_pool_new and fp_pool_reconfigure.
 *
 * Invariants, besides "no crash, no sanitizer report, no leak":
 * - a refusal is FP_EINVAL (or FP_ENOMEM for an allocation) with a message;
 * - an accepted layout lies inside its allocation and fits its declared
 *   format and size (checked here with independent arithmetic), and every
 *   byte of every plane can be written (ASan sees any overflow);
 * - an accepted image copies (fp_image_copy reads exactly the declared
 *   geometry) and a pool's images can be acquired, written and copied.
 * Allocations above 8 MiB are not made: such layouts are only validated.
 */
#include "fuzz_layout_body.h"

#include "image_priv.h"
#include <framepool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BYTES ((size_t)8 << 20)

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint64_t take(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = (v << 8) | (r->n ? *r->p : 0);
        if (r->n)
            r->p++, r->n--;
    }
    return v;
}

/* Values near the interesting edges more often than uniform bytes would. */
static int take_int(reader *r)
{
    uint8_t k = (uint8_t)take(r, 1);
    switch (k & 7) {
    case 0: return (int)(int8_t)take(r, 1);
    case 1: return (int)take(r, 2);
    case 2: return (int)(int32_t)take(r, 4);
    case 3: return 64 * (int)take(r, 1);
    case 4: return (int)take(r, 1) + 1;
    default: return (int)(take(r, 2) % 4097);
    }
}

static size_t take_size(reader *r)
{
    uint8_t k = (uint8_t)take(r, 1);
    switch (k & 7) {
    case 0: return (size_t)take(r, 8);
    case 1: return SIZE_MAX - (size_t)take(r, 2);
    case 2: return 64 * (size_t)take(r, 2);
    case 3: return (size_t)take(r, 4);
    default: return 64 * (size_t)take(r, 1);
    }
}

static fp_pixfmt take_format(reader *r)
{
    return (fp_pixfmt)((int)take(r, 1) % (FP_PIX_COUNT_ + 2) - 1);
}

static int failed;

static void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_layout: invariant broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failed = 1;
    fplz_violation();
}

static void check_refusal(int rc, const char *what)
{
    if (rc != FP_EINVAL && rc != FP_ENOMEM && rc != FP_ELIMIT)
        fz_fail("%s: undocumented result %d", what, rc);
    if (rc == FP_EINVAL && !fp_errmsg()[0])
        fz_fail("%s: FP_EINVAL without a message", what);
}

/* The independent check of an accepted image: every plane inside the
 * allocation and large enough for the format; then every byte written. */
static void check_image(fp_image *img, const char *what)
{
    fp_layout l;
    if (fp_image_layout(img, &l) == FP_OK) {
        const fp_pixfmt_desc *d = fp_pixfmt_describe(img->format);
        if (d && l.planes != d->planes)
            fz_fail("%s: %d planes for %s", what, l.planes, d->name);
        for (int p = 0; p < l.planes; p++) {
            if (l.stride[p] <= 0 || l.rows[p] <= 0 || l.offset[p] > l.size ||
                (unsigned __int128)l.stride[p] * (unsigned)l.rows[p] > l.size - l.offset[p])
                fz_fail("%s: plane %d outside its %zu bytes", what, p, l.size);
            if (d) {
                int cw = p ? (img->width + (1 << d->log2_chroma_w) - 1) >> d->log2_chroma_w
                           : img->width;
                int ch = p ? (img->height + (1 << d->log2_chroma_h) - 1) >> d->log2_chroma_h
                           : img->height;
                if ((long long)l.stride[p] < (long long)cw * d->bytes_per_pixel[p] ||
                    l.rows[p] < ch)
                    fz_fail("%s: plane %d (%d x %d rows) too small for %s %dx%d", what, p,
                            l.stride[p], l.rows[p], d->name, img->width, img->height);
            }
            memset(img->data[p], 0x5a, (size_t)l.stride[p] * (size_t)l.rows[p]);
        }
    }
    fp_image *copy = NULL;
    int rc = fp_image_copy(img, NULL, 0, &copy);
    if (rc == FP_OK)
        fp_unref(&copy);
    else
        check_refusal(rc, "fp_image_copy");
}

static void take_layout(reader *r, fp_layout *l)
{
    memset(l, 0, sizeof *l);
    l->planes = (int)(take(r, 1) % 6);
    for (int p = 0; p < 4; p++) {
        l->stride[p] = take_int(r);
        l->rows[p] = take_int(r);
        l->offset[p] = take_size(r);
    }
    l->size = take_size(r);
}

static void run_new_layout(reader *r)
{
    fp_layout l;
    take_layout(r, &l);
    fp_pixfmt f = take_format(r);
    int w = take_int(r), h = take_int(r);
    fp_image *img = NULL;
    /* A layout the check accepts is allocated: only those of at most
     * 8 MiB go through the public call; the check itself sees them all. */
    if (l.size > MAX_BYTES && fp__layout_check(&l, f, w, h, "fuzz") == FP_OK)
        return;
    int rc = fp_image_new_layout(&l, f, (int)take(r, 1) - 1, w, h, &img);
    if (rc != FP_OK) {
        check_refusal(rc, "fp_image_new_layout");
        return;
    }
    check_image(img, "fp_image_new_layout");
    fp_image *keep = fp_ref(img);
    if (fp_image_make_writable(&img) == FP_OK)
        check_image(img, "make_writable copy");
    fp_unref(&keep);
    fp_unref(&img);
}

static void wrap_free(void *user)
{
    free(user);
}

static void run_wrap(reader *r)
{
    fp_image_wrap_info wi;
    memset(&wi, 0, sizeof wi);
    wi.format = take_format(r);
    wi.width = take_int(r);
    wi.height = take_int(r);
    wi.av_format = -1;
    wi.bytes = take_size(r);
    unsigned present = (unsigned)take(r, 1);
    size_t need = 0;
    size_t off[4] = {0};
    for (int p = 0; p < 4; p++) {
        wi.stride[p] = take_int(r);
        off[p] = need;
        /* Memory for height rows of the given stride, when it is sane. */
        if (wi.stride[p] > 0 && wi.height > 0 && wi.height <= FP_MAX_DIMENSION)
            need += (size_t)wi.stride[p] * (size_t)wi.height;
    }
    if (need == 0 || need > MAX_BYTES)
        need = 64;
    uint8_t *mem = malloc(need);
    if (!mem)
        return;
    for (int p = 0; p < 4; p++)
        wi.data[p] = (present >> p) & 1 || p == 0 ? mem + (off[p] < need ? off[p] : 0) : NULL;
    /* What the description promises, worked out here independently: a
     * known format wants each of its planes present with a stride holding
     * its row; `covered` says whether this harness's memory holds them. */
    const fp_pixfmt_desc *d = fp_pixfmt_describe(wi.format);
    int valid = d && wi.width > 0 && wi.height > 0 && wi.width <= FP_MAX_DIMENSION &&
                wi.height <= FP_MAX_DIMENSION && wi.bytes <= (size_t)PTRDIFF_MAX / 2;
    int covered = valid;
    for (int p = 0; valid && p < d->planes; p++) {
        int cw = p ? (wi.width + (1 << d->log2_chroma_w) - 1) >> d->log2_chroma_w : wi.width;
        if (!wi.data[p] || wi.stride[p] <= 0 ||
            (long long)wi.stride[p] < (long long)cw * d->bytes_per_pixel[p])
            valid = 0;
        else if (off[p] + (size_t)wi.stride[p] * (size_t)wi.height > need)
            covered = 0;
    }
    wi.free_fn = wrap_free;
    wi.user = mem;
    fp_image *img = NULL;
    int rc = fp_image_wrap(&wi, &img);
    if (rc != FP_OK) {
        check_refusal(rc, "fp_image_wrap");
        if (valid)
            fz_fail("fp_image_wrap refused a valid %s %dx%d: %s", d->name, wi.width, wi.height,
                    fp_errmsg());
        free(mem);
        return;
    }
    if (d && !valid)
        fz_fail("fp_image_wrap accepted %s %dx%d with strides %d/%d/%d/%d", d->name, wi.width,
                wi.height, wi.stride[0], wi.stride[1], wi.stride[2], wi.stride[3]);
    if (valid && covered) {
        fp_image *copy = NULL;
        if (fp_image_copy(img, NULL, 0, &copy) == FP_OK)
            fp_unref(&copy);
    }
    fp_unref(&img);
}

static void take_config(reader *r, fp_pool_config *cfg, fp_layout *l)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->format = take_format(r);
    cfg->width = take_int(r);
    cfg->height = take_int(r);
    cfg->av_format_plus1 = (int)(int8_t)take(r, 1);
    uint8_t k = (uint8_t)take(r, 1);
    cfg->align = k & 1 ? take_int(r) : 0;
    cfg->padding = k & 2 ? take_size(r) : 0;
    cfg->min_buffers = (unsigned)take(r, 1) % 4;
    cfg->max_buffers = (unsigned)take(r, 1) % 5;
    cfg->max_idle_seconds = k & 4 ? -1.0 : 0.0;
    cfg->prefault = k & 8;
    if (k & 16) {
        take_layout(r, l);
        cfg->layout = l;
    }
}

/* A config the harness lets allocate: one buffer at most 8 MiB. */
static int affordable(const fp_pool_config *cfg)
{
    if (cfg->layout)
        return cfg->layout->size <= MAX_BYTES;
    fp_layout l;
    if (fp_layout_compute(cfg->format, cfg->width, cfg->height, cfg->align, 0, &l) != FP_OK)
        return 1; /* refused anyway */
    return cfg->padding <= MAX_BYTES && l.size <= MAX_BYTES;
}

static void use_pool(fp_pool *p)
{
    fp_image *a = NULL, *b = NULL;
    if (fp_pool_acquire(p, 0, &a) != FP_OK)
        return;
    check_image(a, "pool image");
    if (fp_image_copy(a, p, 0, &b) == FP_OK)
        check_image(b, "pool copy");
    fp_unref(&b);
    fp_unref(&a);
}

static void run_pool(reader *r)
{
    fp_pool_config cfg;
    fp_layout l;
    take_config(r, &cfg, &l);
    if (!affordable(&cfg))
        return;
    fp_pool *p = NULL;
    int rc = fp_pool_new(&cfg, &p);
    if (rc != FP_OK) {
        check_refusal(rc, "fp_pool_new");
        return;
    }
    use_pool(p);
    fp_pool_config next;
    fp_layout l2;
    take_config(r, &next, &l2);
    if (affordable(&next)) {
        rc = fp_pool_reconfigure(p, &next);
        if (rc != FP_OK)
            check_refusal(rc, "fp_pool_reconfigure");
        use_pool(p);
    }
    fp_unref(&p);
}

int fplz_run_one(const uint8_t *data, size_t size)
{
    failed = 0;
    reader r = {data, size};
    while (r.n && !failed) {
        switch (take(&r, 1) % 3) {
        case 0: run_new_layout(&r); break;
        case 1: run_wrap(&r); break;
        default: run_pool(&r); break;
        }
    }
    return failed ? -1 : 0;
}
