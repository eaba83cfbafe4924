// throughput_cv — the OpenCV peer of bench/throughput: decodes INPUT with
// cv::VideoCapture::read (BGR frames, as OpenCV users get them) and prints
// "frames wall-seconds cpu-seconds" (CPU: user+system of this process from
// just before the open to the end, so process start-up is not counted). OpenCV 4.6 picks the decoder thread count itself (the
// number of CPUs); bench/throughput gives every other peer the same count.
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <sys/resource.h>

static double cpu_seconds()
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: throughput_cv INPUT\n");
        return 2;
    }
    try {
        double c0 = cpu_seconds();
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
        std::printf("%ld %.6f %.6f\n", n, s, cpu_seconds() - c0);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "throughput_cv: %s\n", e.what());
        return 1;
    }
    return 0;
}
