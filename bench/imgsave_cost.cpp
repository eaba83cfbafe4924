// imgsave_cost: what saving one 1280x720 BGR frame as PNG costs, three ways,
// in the same process: fp_image_save (framepool's zlib-streamed writer),
// cv::imwrite (OpenCV's default) and libavcodec's PNG encoder at the same
// level and filter (after the BGR -> RGB copy that encoder needs). Prints
// CPU and wall time per save and the file sizes, per round. A benchmark peer
// (C++ for cv::imwrite), not library code.
//
//   build/rel/bench/imgsave_cost [SAVES_PER_ROUND] [ROUNDS]
#include <framepool.h>
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>
}
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

static double wall()
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu()
{
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static long file_size(const std::string &p)
{
    FILE *f = std::fopen(p.c_str(), "rb");
    if (!f)
        return -1;
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f);
    std::fclose(f);
    return n;
}

// libavcodec's PNG encoder as a plain libav program uses it: RGB24 copy,
// encoder opened for the save, level 1, "sub" filter, fwrite.
static int lav_png(const char *path, const fp_image *bgr, AVFrame *rgb)
{
    for (int y = 0; y < bgr->height; y++) {
        const uint8_t *s = bgr->data[0] + (size_t)y * (size_t)bgr->stride[0];
        uint8_t *d = rgb->data[0] + (size_t)y * (size_t)rgb->linesize[0];
        for (int x = 0; x < bgr->width; x++, s += 3, d += 3)
            d[0] = s[2], d[1] = s[1], d[2] = s[0];
    }
    const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_PNG);
    AVCodecContext *e = avcodec_alloc_context3(c);
    AVPacket *pkt = av_packet_alloc();
    int rc = -1;
    if (e && pkt) {
        e->width = bgr->width;
        e->height = bgr->height;
        e->pix_fmt = AV_PIX_FMT_RGB24;
        e->time_base = AVRational{1, 25};
        e->compression_level = 1;
        av_opt_set(e->priv_data, "pred", "sub", 0);
        if (avcodec_open2(e, c, nullptr) == 0 && avcodec_send_frame(e, rgb) == 0 &&
            avcodec_receive_packet(e, pkt) == 0) {
            FILE *f = std::fopen(path, "wb");
            if (f) {
                rc = std::fwrite(pkt->data, 1, (size_t)pkt->size, f) == (size_t)pkt->size ? 0 : -1;
                std::fclose(f);
            }
        }
    }
    av_packet_free(&pkt);
    avcodec_free_context(&e);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
        std::printf("usage: imgsave_cost [SAVES_PER_ROUND] [ROUNDS]\n"
                    "  CPU and wall ms per 1280x720 BGR PNG save and file size: fp_image_save,\n"
                    "  cv::imwrite, libavcodec's PNG encoder (default 30 saves, 3 rounds)\n");
        return 0;
    }
    int n = argc > 1 ? std::atoi(argv[1]) : 30, rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    if (n < 1 || rounds < 1 || argc > 3) {
        std::fprintf(stderr, "usage: imgsave_cost [SAVES_PER_ROUND] [ROUNDS]\n");
        return 2;
    }
    const int w = 1280, h = 720;
    fp_image *img = nullptr;
    if (fp_image_new(FP_PIX_BGR24, w, h, &img) < 0)
        return 1;
    // One testsrc2 frame, as the generated mem_per_frame clip shows.
    FILE *p = popen("ffmpeg -v error -f lavfi -i testsrc2=size=1280x720 -frames:v 1 "
                    "-pix_fmt bgr24 -f rawvideo -", "r");
    for (int y = 0; p && y < h; y++)
        if (std::fread(img->data[0] + (size_t)y * (size_t)img->stride[0], 1, (size_t)w * 3, p) !=
            (size_t)w * 3) {
            std::fprintf(stderr, "imgsave_cost: the ffmpeg command gave no frame\n");
            return 1;
        }
    if (!p || pclose(p) != 0)
        return 1;
    char dir[] = "/tmp/imgsave_cost.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    std::string fp_path = std::string(dir) + "/fp.png", cv_path = std::string(dir) + "/cv.png",
                lav_path = std::string(dir) + "/lav.png";
    cv::Mat m(h, w, CV_8UC3, img->data[0], (size_t)img->stride[0]);
    AVFrame *rgb = av_frame_alloc();
    rgb->format = AV_PIX_FMT_RGB24;
    rgb->width = w;
    rgb->height = h;
    if (av_frame_get_buffer(rgb, 0) < 0)
        return 1;
    std::printf("1280x720 BGR24 frame (testsrc2), %d saves per round; CPU ms (wall ms) per save\n",
                n);
    for (int r = 0; r < rounds; r++) {
        double t0 = wall(), c0 = cpu();
        for (int i = 0; i < n; i++)
            if (fp_image_save(fp_path.c_str(), img, nullptr) < 0) {
                std::fprintf(stderr, "%s\n", fp_errmsg());
                return 1;
            }
        double t1 = wall(), c1 = cpu();
        for (int i = 0; i < n; i++)
            cv::imwrite(cv_path, m);
        double t2 = wall(), c2 = cpu();
        for (int i = 0; i < n; i++)
            if (lav_png(lav_path.c_str(), img, rgb) < 0)
                return 1;
        double t3 = wall(), c3 = cpu();
        std::printf("round %d: fp_image_save %.2f (%.2f) %ld B | cv::imwrite %.2f (%.2f) %ld B | "
                    "libavcodec png %.2f (%.2f) %ld B\n",
                    r + 1, (c1 - c0) * 1e3 / n, (t1 - t0) * 1e3 / n, file_size(fp_path),
                    (c2 - c1) * 1e3 / n, (t2 - t1) * 1e3 / n, file_size(cv_path),
                    (c3 - c2) * 1e3 / n, (t3 - t2) * 1e3 / n, file_size(lav_path));
    }
    // Opening and freeing an encoder context: fp_image_save does it per call
    // for JPEG/BMP/PPM/PGM.
    double c0 = cpu(), t0 = wall();
    for (int i = 0; i < 1000; i++) {
        const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
        AVCodecContext *e = avcodec_alloc_context3(c);
        e->width = w;
        e->height = h;
        e->pix_fmt = AV_PIX_FMT_YUV420P;
        e->color_range = AVCOL_RANGE_JPEG;
        e->time_base = AVRational{1, 25};
        if (avcodec_open2(e, c, nullptr) < 0)
            return 1;
        avcodec_free_context(&e);
    }
    std::printf("MJPEG encoder context open + free: %.3f ms CPU (%.3f wall)\n",
                (cpu() - c0), (wall() - t0));
    av_frame_free(&rgb);
    fp_unref(&img);
    unlink(fp_path.c_str());
    unlink(cv_path.c_str());
    unlink(lav_path.c_str());
    rmdir(dir);
    return 0;
}
