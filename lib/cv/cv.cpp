// framepool_cv: OpenCV behind a C ABI. The only C++ file in framepool; no
// exception crosses the extern "C" boundary.
#include "framepool/cv.h"

#include <opencv2/core.hpp>
#include <opencv2/highgui.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <string>

namespace {

// Messages go to framepool's one thread channel (fp_errmsg).
void set_err(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fp_errmsg_set("%s", buf);
}

int cv_type_of(fp_pixfmt f)
{
    switch (f) {
    case FP_PIX_GRAY8: return CV_8UC1;
    case FP_PIX_BGR24:
    case FP_PIX_RGB24: return CV_8UC3;
    case FP_PIX_BGRA:
    case FP_PIX_RGBA: return CV_8UC4;
    default: return -1;
    }
}

// A zero-copy header over a packed image's single plane.
cv::Mat header(const fp_image *img)
{
    return cv::Mat(img->height, img->width, cv_type_of(img->format), img->data[0],
                   static_cast<size_t>(img->stride[0]));
}

// A small process-wide set of pools for the temporary conversions made by
// imwrite and imshow, so that saving every frame allocates nothing per frame.
struct scratch_pools {
    std::mutex mu;
    struct entry {
        fp_pool *pool = nullptr;
        fp_pixfmt format = FP_PIX_NONE;
        int w = 0, h = 0;
        unsigned long last_use = 0;
    } e[4];
    unsigned long tick = 0;

    // Returns a pool (+1) making `format` at w x h.
    int get(fp_pixfmt format, int w, int h, fp_pool **out)
    {
        std::lock_guard<std::mutex> lock(mu);
        entry *victim = &e[0];
        for (auto &x : e) {
            if (x.pool && x.format == format && x.w == w && x.h == h) {
                x.last_use = ++tick;
                *out = static_cast<fp_pool *>(fp_ref(x.pool));
                return FP_OK;
            }
            if (!x.pool || x.last_use < victim->last_use)
                victim = &x;
        }
        fp_pool_config cfg{};
        cfg.name = "framepool_cv scratch";
        cfg.format = format;
        cfg.width = w;
        cfg.height = h;
        cfg.max_buffers = 4;
        fp_pool *p = nullptr;
        int rc = fp_pool_new(&cfg, &p);
        if (rc)
            return rc;
        fp_unref(&victim->pool); // outlives us until its buffers are back
        victim->pool = p;
        victim->format = format;
        victim->w = w;
        victim->h = h;
        victim->last_use = ++tick;
        *out = static_cast<fp_pool *>(fp_ref(p));
        return FP_OK;
    }

    ~scratch_pools()
    {
        for (auto &x : e)
            fp_unref(&x.pool);
    }
};

scratch_pools &scratch()
{
    static scratch_pools s;
    return s;
}

bool pool_fits(fp_pool *pool, fp_pixfmt format, int w, int h)
{
    fp_pool_stats st;
    fp_pool_get_stats(pool, &st);
    return st.format == format && st.width == w && st.height == h;
}

// Acquires the destination image: from `pool`, or standalone.
int make_dest(fp_pool *pool, fp_pixfmt format, int w, int h, int64_t timeout_us, fp_image **out)
{
    if (pool) {
        if (!pool_fits(pool, format, w, h)) {
            set_err("the pool '%s' does not make %s %dx%d images", fp_pool_name(pool),
                    fp_pixfmt_name(format), w, h);
            return FP_EINVAL;
        }
        int rc = fp_pool_acquire(pool, timeout_us, out);
        if (rc)
            set_err("%s", fp_errmsg());
        else if ((*out)->format != format || (*out)->width != w || (*out)->height != h) {
            fp_unref(out);
            set_err("the pool '%s' does not make %s %dx%d images", fp_pool_name(pool),
                    fp_pixfmt_name(format), w, h);
            return FP_EINVAL;
        }
        return rc;
    }
    int rc = fp_image_new(format, w, h, out);
    if (rc)
        set_err("cannot allocate a %s %dx%d image: %s", fp_pixfmt_name(format), w, h,
                fp_strerror(rc));
    return rc;
}

// Converts src into dst (sizes equal, dst packed). Throws cv::Exception.
int convert_into(const fp_image *src, fp_image *dst)
{
    cv::Mat out = header(dst);
    const fp_pixfmt f = src->format, t = dst->format;
    if (f == FP_PIX_YUV420P || f == FP_PIX_NV12) {
        if (src->width % 2 || src->height % 2) {
            set_err("%s to %s needs even dimensions (got %dx%d)", fp_pixfmt_name(f),
                    fp_pixfmt_name(t), src->width, src->height);
            return FP_EINVAL;
        }
        // OpenCV wants the planes back to back: gather them into one buffer
        // that stays with this thread, so the copy allocates only once.
        thread_local cv::Mat packed;
        const int w = src->width, h = src->height;
        packed.create(h * 3 / 2, w, CV_8UC1);
        for (int y = 0; y < h; y++)
            std::memcpy(packed.ptr(y), src->data[0] + static_cast<size_t>(y) * src->stride[0],
                        static_cast<size_t>(w));
        uint8_t *chroma = packed.ptr(h);
        if (f == FP_PIX_NV12) {
            for (int y = 0; y < h / 2; y++)
                std::memcpy(chroma + static_cast<size_t>(y) * w,
                            src->data[1] + static_cast<size_t>(y) * src->stride[1],
                            static_cast<size_t>(w));
        } else {
            for (int p = 1; p <= 2; p++)
                for (int y = 0; y < h / 2; y++) {
                    std::memcpy(chroma, src->data[p] + static_cast<size_t>(y) * src->stride[p],
                                static_cast<size_t>(w / 2));
                    chroma += w / 2;
                }
        }
        int code;
        switch (t) {
        case FP_PIX_BGR24: code = f == FP_PIX_NV12 ? cv::COLOR_YUV2BGR_NV12 : cv::COLOR_YUV2BGR_I420; break;
        case FP_PIX_RGB24: code = f == FP_PIX_NV12 ? cv::COLOR_YUV2RGB_NV12 : cv::COLOR_YUV2RGB_I420; break;
        case FP_PIX_BGRA: code = f == FP_PIX_NV12 ? cv::COLOR_YUV2BGRA_NV12 : cv::COLOR_YUV2BGRA_I420; break;
        case FP_PIX_RGBA: code = f == FP_PIX_NV12 ? cv::COLOR_YUV2RGBA_NV12 : cv::COLOR_YUV2RGBA_I420; break;
        case FP_PIX_GRAY8: code = f == FP_PIX_NV12 ? cv::COLOR_YUV2GRAY_NV12 : cv::COLOR_YUV2GRAY_I420; break;
        default: return FP_EINVAL;
        }
        cv::cvtColor(packed, out, code);
        return FP_OK;
    }
    if (cv_type_of(f) < 0) {
        set_err("cannot convert from %s", fp_pixfmt_name(f));
        return FP_EINVAL;
    }
    cv::Mat in = header(src);
    if (f == t) {
        in.copyTo(out);
        return FP_OK;
    }
    struct pair { fp_pixfmt from, to; int code; };
    static const pair codes[] = {
        {FP_PIX_BGR24, FP_PIX_RGB24, cv::COLOR_BGR2RGB},   {FP_PIX_RGB24, FP_PIX_BGR24, cv::COLOR_RGB2BGR},
        {FP_PIX_BGR24, FP_PIX_BGRA, cv::COLOR_BGR2BGRA},   {FP_PIX_BGR24, FP_PIX_RGBA, cv::COLOR_BGR2RGBA},
        {FP_PIX_BGR24, FP_PIX_GRAY8, cv::COLOR_BGR2GRAY},  {FP_PIX_RGB24, FP_PIX_GRAY8, cv::COLOR_RGB2GRAY},
        {FP_PIX_RGB24, FP_PIX_BGRA, cv::COLOR_RGB2BGRA},   {FP_PIX_RGB24, FP_PIX_RGBA, cv::COLOR_RGB2RGBA},
        {FP_PIX_BGRA, FP_PIX_BGR24, cv::COLOR_BGRA2BGR},   {FP_PIX_BGRA, FP_PIX_RGB24, cv::COLOR_BGRA2RGB},
        {FP_PIX_BGRA, FP_PIX_RGBA, cv::COLOR_BGRA2RGBA},   {FP_PIX_BGRA, FP_PIX_GRAY8, cv::COLOR_BGRA2GRAY},
        {FP_PIX_RGBA, FP_PIX_BGR24, cv::COLOR_RGBA2BGR},   {FP_PIX_RGBA, FP_PIX_RGB24, cv::COLOR_RGBA2RGB},
        {FP_PIX_RGBA, FP_PIX_BGRA, cv::COLOR_RGBA2BGRA},   {FP_PIX_RGBA, FP_PIX_GRAY8, cv::COLOR_RGBA2GRAY},
        {FP_PIX_GRAY8, FP_PIX_BGR24, cv::COLOR_GRAY2BGR},  {FP_PIX_GRAY8, FP_PIX_RGB24, cv::COLOR_GRAY2RGB},
        {FP_PIX_GRAY8, FP_PIX_BGRA, cv::COLOR_GRAY2BGRA},  {FP_PIX_GRAY8, FP_PIX_RGBA, cv::COLOR_GRAY2RGBA},
    };
    for (const pair &c : codes)
        if (c.from == f && c.to == t) {
            cv::cvtColor(in, out, c.code);
            return FP_OK;
        }
    set_err("cannot convert %s to %s", fp_pixfmt_name(f), fp_pixfmt_name(t));
    return FP_EINVAL;
}

bool native_for_highgui(fp_pixfmt f)
{
    return f == FP_PIX_GRAY8 || f == FP_PIX_BGR24 || f == FP_PIX_BGRA;
}

// A Mat that imwrite/imshow can use for `img`: a header over it when its
// format is OpenCV's, else a conversion into a scratch pooled image held in
// *tmp until the caller releases it.
int highgui_mat(const fp_image *img, cv::Mat &m, fp_image **tmp)
{
    if (native_for_highgui(img->format)) {
        m = header(img);
        return FP_OK;
    }
    fp_pixfmt target = img->format == FP_PIX_RGBA ? FP_PIX_BGRA : FP_PIX_BGR24;
    fp_pool *pool = nullptr;
    int rc = scratch().get(target, img->width, img->height, &pool);
    if (rc) {
        set_err("cannot make a conversion pool: %s", fp_strerror(rc));
        return rc;
    }
    rc = fp_cv_convert(img, target, pool, -1, tmp);
    fp_unref(&pool);
    if (rc)
        return rc;
    m = header(*tmp);
    return FP_OK;
}

int map_cv_exception(const cv::Exception &e, const char *what)
{
    set_err("%s: OpenCV error: %s", what, e.what());
    if (e.code == cv::Error::StsNoMem)
        return FP_ENOMEM;
    return FP_EUNKNOWN;
}

// Runs `body` (which returns an FP_ error code) and turns every C++
// exception into an error code with a message naming `what`.
template <class F> int guarded(const char *what, F &&body)
{
    try {
        return body();
    } catch (const cv::Exception &e) {
        return map_cv_exception(e, what);
    } catch (const std::bad_alloc &) {
        set_err("%s: out of memory", what);
        return FP_ENOMEM;
    } catch (...) {
        set_err("%s: unexpected exception", what);
        return FP_EUNKNOWN;
    }
}

// Hands dst to the caller with src's frame metadata, or drops it on error.
int deliver(int rc, const fp_image *src, fp_image *dst, fp_image **out)
{
    if (rc) {
        fp_unref(&dst);
        return rc;
    }
    dst->pts = src->pts;
    dst->time = src->time;
    dst->index = src->index;
    dst->flags = src->flags & ~static_cast<unsigned>(FP_IMAGE_READONLY);
    *out = dst;
    return FP_OK;
}

int check_image(const fp_image *img, const char *what)
{
    if (!img || !img->data[0] || img->width <= 0 || img->height <= 0) {
        set_err("%s: no image", what);
        return FP_EINVAL;
    }
    return FP_OK;
}

bool display_available()
{
    const char *d = std::getenv("DISPLAY"), *w = std::getenv("WAYLAND_DISPLAY");
    return (d && *d) || (w && *w);
}

bool gui_failed = false; // the GUI backend refused to start once: stay headless

// Windows created so far: each is created once, sized to the image, without
// the Qt toolbar and status bar (they would hide part of a small frame).
std::mutex windows_mu;
std::set<std::string> windows;

void ensure_window(const char *name)
{
    std::lock_guard<std::mutex> lock(windows_mu);
    if (windows.insert(name).second)
        cv::namedWindow(name, cv::WINDOW_AUTOSIZE | cv::WINDOW_GUI_NORMAL);
}

} // namespace

extern "C" {

int fp_cv_has_display(void)
{
    return display_available() && !gui_failed ? 1 : 0;
}

int fp_cv_convert(const fp_image *src, fp_pixfmt format, fp_pool *pool, int64_t timeout_us,
                  fp_image **out)
{
    if (!out)
        return FP_EINVAL;
    *out = nullptr;
    if (int rc = check_image(src, "convert"))
        return rc;
    if (cv_type_of(format) < 0) {
        set_err("convert: cannot convert to %s (GRAY8, BGR24, RGB24, BGRA, RGBA only)",
                fp_pixfmt_name(format));
        return FP_EINVAL;
    }
    fp_image *dst = nullptr;
    int rc = make_dest(pool, format, src->width, src->height, timeout_us, &dst);
    if (rc)
        return rc;
    rc = guarded("convert", [&] { return convert_into(src, dst); });
    return deliver(rc, src, dst, out);
}

int fp_cv_resize(const fp_image *src, int w, int h, fp_pool *pool, int64_t timeout_us,
                 fp_image **out)
{
    if (!out)
        return FP_EINVAL;
    *out = nullptr;
    if (int rc = check_image(src, "resize"))
        return rc;
    if (cv_type_of(src->format) < 0) {
        set_err("resize: %s is not supported (GRAY8, BGR24, RGB24, BGRA, RGBA)",
                fp_pixfmt_name(src->format));
        return FP_EINVAL;
    }
    if (w <= 0 || h <= 0 || w > FP_MAX_DIMENSION || h > FP_MAX_DIMENSION) {
        set_err("resize: invalid size %dx%d", w, h);
        return FP_EINVAL;
    }
    fp_image *dst = nullptr;
    int rc = make_dest(pool, src->format, w, h, timeout_us, &dst);
    if (rc)
        return rc;
    rc = guarded("resize", [&]() -> int {
        cv::Mat in = header(src), o = header(dst);
        bool shrink = static_cast<long>(w) * h < static_cast<long>(src->width) * src->height;
        cv::resize(in, o, o.size(), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
        return FP_OK;
    });
    return deliver(rc, src, dst, out);
}

int fp_cv_imwrite(const char *path, const fp_image *img)
{
    if (!path || !*path) {
        set_err("imwrite: no path");
        return FP_EINVAL;
    }
    if (int rc = check_image(img, "imwrite"))
        return rc;
    fp_image *tmp = nullptr;
    int rc = guarded("imwrite", [&]() -> int {
        if (!cv::haveImageWriter(path)) {
            set_err("imwrite '%s': no image encoder for this file extension (try .png or .jpg)",
                    path);
            return FP_EFORMAT;
        }
        cv::Mat m;
        int r = highgui_mat(img, m, &tmp);
        if (r)
            return r;
        errno = 0;
        if (!cv::imwrite(path, m)) {
            int e = errno;
            set_err("imwrite '%s': could not write the file%s%s", path, e ? ": " : "",
                    e ? std::strerror(e) : " (missing directory or no permission?)");
            return FP_EIO;
        }
        return FP_OK;
    });
    fp_unref(&tmp);
    return rc;
}

int fp_cv_imshow(const char *window, const fp_image *img)
{
    if (!window) {
        set_err("imshow: no window name");
        return FP_EINVAL;
    }
    if (int rc = check_image(img, "imshow"))
        return rc;
    if (!fp_cv_has_display()) {
        set_err("imshow: no display (DISPLAY and WAYLAND_DISPLAY are unset%s)",
                gui_failed ? ", or the GUI backend failed to start" : "");
        return FP_ENODISPLAY;
    }
    fp_image *tmp = nullptr;
    int rc = FP_OK;
    try {
        cv::Mat m;
        rc = highgui_mat(img, m, &tmp);
        if (rc == FP_OK) {
            ensure_window(window);
            cv::imshow(window, m);
        }
    } catch (const cv::Exception &e) {
        // A backend that cannot reach the display throws here.
        gui_failed = true;
        rc = FP_ENODISPLAY;
        set_err("imshow: the GUI backend failed: %s", e.what());
    } catch (const std::bad_alloc &) {
        set_err("imshow: out of memory");
        rc = FP_ENOMEM;
    } catch (...) {
        set_err("imshow: unexpected exception");
        rc = FP_EUNKNOWN;
    }
    fp_unref(&tmp);
    return rc;
}

int fp_cv_waitkey(int ms)
{
    if (!fp_cv_has_display())
        return -1;
    try {
        return cv::waitKey(ms);
    } catch (...) {
        return -1;
    }
}

void fp_cv_destroy_all_windows(void)
{
    if (!fp_cv_has_display())
        return;
    try {
        cv::destroyAllWindows();
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(windows_mu);
    windows.clear();
}

} // extern "C"
