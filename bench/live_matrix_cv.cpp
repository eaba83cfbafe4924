// live_matrix_cv — the cv::VideoCapture peer of bench/live_matrix: reads URL
// with the FFmpeg backend for SECONDS the way an OpenCV loop that survives a
// camera going away does (read until it fails, release, open again after
// 0.5 s), with open and read timeouts of 10 s (framepool's default stall).
// Prints "s T" at start, "c T" after each successful open and "x T STAMP -1"
// per frame (T: CLOCK_MONOTONIC seconds, STAMP: the source's stamp of the
// picture, tests/zoo.h, read from its green channel; -1 unread).
// FFmpeg options come from OPENCV_FFMPEG_CAPTURE_OPTIONS ("k;v|k;v").
#include "zoo.h"

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

static double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: live_matrix_cv URL SECONDS\n");
        return 2;
    }
    double seconds = std::atof(argv[2]);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    double start = now();
    std::printf("s %.6f\n", start);
    try {
        std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, 10000,
                                   cv::CAP_PROP_READ_TIMEOUT_MSEC, 10000};
        cv::Mat m;
        while (now() - start < seconds) {
            cv::VideoCapture cap(argv[1], cv::CAP_FFMPEG, params);
            if (!cap.isOpened()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                continue;
            }
            std::printf("c %.6f\n", now());
            while (now() - start < seconds && cap.read(m)) {
                long stamp = -1;
                if (m.type() == CV_8UC3)
                    stamp = zoo_stamp_read(m.data + 1, (int)m.step, 3, m.cols, m.rows);
                std::printf("x %.6f %ld -1\n", now(), stamp);
            }
            cap.release();
            if (now() - start < seconds)
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "live_matrix_cv: %s\n", e.what());
        return 1;
    }
    return 0;
}
