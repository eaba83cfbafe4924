// live_latency_cv — the OpenCV peer of bench/live_latency: reads URL with
// cv::VideoCapture (FFmpeg backend) in a loop that spends WORK_MS per frame,
// for SECONDS, and prints one line per frame: "x <seconds since start>
// <now - frame time>" (frame time = CAP_PROP_POS_MSEC). bench/live_latency
// turns these into frame ages exactly as it does for framepool.
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

static double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        std::fprintf(stderr, "usage: live_latency_cv URL SECONDS WORK_MS\n");
        return 2;
    }
    double seconds = std::atof(argv[2]), work = std::atof(argv[3]) / 1000.0;
    try {
        cv::VideoCapture cap(argv[1], cv::CAP_FFMPEG);
        if (!cap.isOpened()) {
            std::fprintf(stderr, "live_latency_cv: cannot open %s\n", argv[1]);
            return 1;
        }
        cv::Mat m;
        double start = now();
        while (now() - start < seconds && cap.read(m)) {
            double pos = cap.get(cv::CAP_PROP_POS_MSEC) / 1000.0;
            std::printf("x %.6f %.6f\n", now() - start, now() - pos);
            std::this_thread::sleep_for(std::chrono::duration<double>(work));
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "live_latency_cv: %s\n", e.what());
        return 1;
    }
    return 0;
}
