// multi_stream_cv — the OpenCV peer of bench/multi_stream: one thread per URL,
// each reading its stream with cv::VideoCapture::read (BGR frames) for
// SECONDS. Prints "summary frames=<n> fps=<all streams> cpu_per_frame_ms=<ms>
// rss_slope_per_min=<bytes> rss_from=<bytes> rss_last=<bytes> rss_max=<bytes>
// rss_slope2_per_min=<bytes>" (after a 3 s warm-up, as multi_stream does;
// RssAnon sampled every 100 ms, the slope and rss_from/max from 10 s on,
// slope2 over the second half), with multi_stream's own sampling
// and Theil-Sen slope (framepool/measure.h).
#include "common/bench_common.h"

#include <framepool/measure.h>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: multi_stream_cv SECONDS URL...\n");
        return 2;
    }
    double seconds = std::atof(argv[1]);
    std::atomic<bool> stop(false);
    std::vector<std::atomic<long>> frames(argc - 2);
    std::vector<std::thread> th;
    for (int i = 2; i < argc; i++) {
        frames[i - 2] = 0;
        th.emplace_back([&, i] {
            try {
                cv::VideoCapture cap(argv[i], cv::CAP_FFMPEG);
                cv::Mat m;
                while (!stop && cap.read(m))
                    frames[i - 2]++;
            } catch (const std::exception &e) {
                std::fprintf(stderr, "multi_stream_cv: %s\n", e.what());
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    long f0 = 0;
    for (auto &f : frames)
        f0 += f;
    fp_procstat self;
    if (fp_procstat_open(&self, 0, 0) != FP_OK) {
        std::fprintf(stderr, "multi_stream_cv: cannot read /proc/self\n");
        std::_Exit(2);
    }
    double c0 = bench_cpu_seconds(), t0 = bench_now();
    std::vector<double> ts, rs;
    while (bench_now() - t0 < seconds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        fp_procstat_sample ps;
        if (fp_procstat_read(&self, &ps) == FP_OK) {
            ts.push_back(bench_now() - t0);
            rs.push_back((double)ps.rss_anon);
        }
    }
    long f1 = 0;
    for (auto &f : frames)
        f1 += f;
    double c = bench_cpu_seconds() - c0, wall = bench_now() - t0;
    stop = true;
    // Theil-Sen slope after 10 s (or the second half)
    size_t from = 0;
    while (from < ts.size() && ts[from] < 10)
        from++;
    if (from + 2 >= ts.size())
        from = ts.size() / 2;
    double slope = 0, slope2 = 0; // per minute
    size_t half = ts.size() / 2;
    if (!ts.empty())
        fp_theil_sen(ts.data() + from, rs.data() + from, ts.size() - from, 0, &slope);
    if (ts.size() >= 4)
        fp_theil_sen(ts.data() + half, rs.data() + half, ts.size() - half, 0, &slope2);
    slope *= 60;
    slope2 *= 60;
    double rs_max = 0;
    for (size_t i = from; i < rs.size(); i++)
        rs_max = rs[i] > rs_max ? rs[i] : rs_max;
    std::printf("summary frames=%ld fps=%.2f cpu_per_frame_ms=%.4f rss_slope_per_min=%.1f "
                "rss_from=%.0f rss_last=%.0f rss_max=%.0f rss_slope2_per_min=%.1f\n",
                f1 - f0, (f1 - f0) / wall, f1 > f0 ? c / (f1 - f0) * 1e3 : 0.0, slope,
                from < rs.size() ? rs[from] : 0.0, rs.empty() ? 0.0 : rs.back(), rs_max, slope2);
    std::fflush(stdout);
    std::_Exit(0); // threads may sit in a blocking read of a server that is about to die
}
