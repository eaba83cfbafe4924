// throughput_cv — the OpenCV peer of bench/throughput: decodes INPUT with
// cv::VideoCapture::read (BGR frames, as OpenCV users get them) and prints
// "frames wall-seconds cpu-seconds" (CPU: user+system of this process from
// just before the open to the end, so process start-up is not counted). OpenCV 4.6 picks the decoder thread count itself (the
// number of CPUs); bench/throughput gives every other peer the same count.
#include "common/bench_common.h"

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>

int main(int argc, char **argv)
{
    if (argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
        std::printf("usage: throughput_cv INPUT\n  prints: frames wall-seconds cpu-seconds\n");
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        std::fprintf(stderr, "usage: throughput_cv INPUT\n");
        return 2;
    }
    try {
        double c0 = bench_cpu_seconds();
        auto t0 = std::chrono::steady_clock::now();
        cv::VideoCapture cap(argv[1], cv::CAP_FFMPEG);
        if (!cap.isOpened()) {
            std::fprintf(stderr, "throughput_cv: cannot open %s\n", argv[1]);
            return 1;
        }
        cv::Mat m;
        long n = 0;
        while (cap.read(m))
            n++;
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%ld %.6f %.6f\n", n, s, bench_cpu_seconds() - c0);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "throughput_cv: %s\n", e.what());
        return 1;
    }
    return 0;
}
