// multi_stream_cv — the OpenCV peer of bench/multi_stream: one thread per URL,
// each reading its stream with cv::VideoCapture::read (BGR frames) for
// SECONDS. Prints "summary frames=<n> fps=<all streams> cpu_per_frame_ms=<ms>
// rss_slope_per_min=<bytes>" (after a 3 s warm-up, as multi_stream does).
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sys/resource.h>
#include <thread>
#include <vector>

static double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

static double cpu()
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

static double rss_anon()
{
    FILE *f = std::fopen("/proc/self/status", "r");
    char line[256];
    double v = 0;
    while (f && std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, "RssAnon:", 8)) {
            v = std::atof(line + 8) * 1024;
            break;
        }
    if (f)
        std::fclose(f);
    return v;
}

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
    double c0 = cpu(), t0 = now();
    std::vector<double> ts, rs;
    while (now() - t0 < seconds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ts.push_back(now() - t0);
        rs.push_back(rss_anon());
    }
    long f1 = 0;
    for (auto &f : frames)
        f1 += f;
    double c = cpu() - c0, wall = now() - t0;
    stop = true;
    // Theil-Sen slope after 10 s (or the second half)
    size_t from = 0;
    while (from < ts.size() && ts[from] < 10)
        from++;
    if (from + 2 >= ts.size())
        from = ts.size() / 2;
    std::vector<double> sl;
    std::mt19937 g(7);
    size_t m = ts.size() - from;
    for (int k = 0; k < 200000 && m > 1; k++) {
        size_t a = from + g() % m, b = from + g() % m;
        if (ts[a] != ts[b])
            sl.push_back((rs[b] - rs[a]) / (ts[b] - ts[a]));
    }
    std::sort(sl.begin(), sl.end());
    double slope = sl.empty() ? 0 : sl[sl.size() / 2] * 60;
    std::printf("summary frames=%ld fps=%.2f cpu_per_frame_ms=%.4f rss_slope_per_min=%.1f\n",
                f1 - f0, (f1 - f0) / wall, f1 > f0 ? c / (f1 - f0) * 1e3 : 0.0, slope);
    std::fflush(stdout);
    std::_Exit(0); // threads may sit in a blocking read of a server that is about to die
}
