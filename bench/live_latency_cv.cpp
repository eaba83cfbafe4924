// live_latency_cv — the OpenCV peer of bench/live_latency: reads URL with
// cv::VideoCapture (FFmpeg backend) in a loop that spends WORK_MS per frame,
// for SECONDS, and prints the frame age (how far behind the source's clock
// the frame it got is) once per second and a summary line:
//   "age t=<s> age=<s>" ... then "summary frames=<n> last=<s> max=<s> mean=<s>".
// The source's clock: a -re source emits the frame of stream time t at
// T0 + t; T0 is taken from the first frame (the loop is idle then), so
// age = now - (T0 + CAP_PROP_POS_MSEC / 1000).
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
        double t0 = -1, start = now(), next_print = start + 1, sum = 0, mx = 0, last = 0;
        long n = 0;
        while (now() - start < seconds && cap.read(m)) {
            double pos = cap.get(cv::CAP_PROP_POS_MSEC) / 1000.0;
            if (t0 < 0)
                t0 = now() - pos;
            last = now() - (t0 + pos);
            if (last > mx)
                mx = last;
            sum += last;
            n++;
            if (now() >= next_print) {
                std::printf("age t=%.0f age=%.3f\n", now() - start, last);
                std::fflush(stdout);
                next_print += 1;
            }
            std::this_thread::sleep_for(std::chrono::duration<double>(work));
        }
        std::printf("summary frames=%ld last=%.3f max=%.3f mean=%.3f\n", n, last, mx,
                    n ? sum / n : 0.0);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "live_latency_cv: %s\n", e.what());
        return 1;
    }
    return 0;
}
