// multi_stream_cv — the OpenCV peer of bench/multi_stream: one thread per
// URL, each reading its stream with cv::VideoCapture::read (CAP_FFMPEG, its
// defaults: BGR frames, the backend's own decoder threads) and doing the
// loop's work on every frame (ms_touch: read the stamp row). Every frame is
// recorded in the shared file SHARED (bench/multi_stream.h: stream i is the
// i-th URL; frame k is the k-th frame read since the open) until the
// controller sets `stop`; the controller measures this process's CPU time
// and RssAnon from outside. Exit status 0, or 2 for bad arguments.
#include "multi_stream.h"

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > MS_MAXS) {
        std::fprintf(stderr, "usage: multi_stream_cv SHARED URL... (at most %d URLs)\n", MS_MAXS);
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    void *map = fd >= 0 ? mmap(NULL, sizeof(ms_shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                        : MAP_FAILED;
    if (map == MAP_FAILED) {
        std::fprintf(stderr, "multi_stream_cv: cannot map %s\n", argv[1]);
        return 2;
    }
    ms_shared *sh = static_cast<ms_shared *>(map);
    std::vector<std::thread> th;
    for (int i = 2; i < argc; i++) {
        th.emplace_back([sh, argv, i] {
            int s = i - 2;
            try {
                cv::VideoCapture cap(argv[i], cv::CAP_FFMPEG);
                cv::Mat m;
                uint64_t sum = 0;
                int64_t k = 0;
                while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
                    if (!cap.read(m)) {
                        __atomic_fetch_add(&sh->s[s].errors, 1, __ATOMIC_RELAXED);
                        break;
                    }
                    int64_t now = ms_wall_us();
                    int code = m.rows > MS_STAMP_ROW && m.type() == CV_8UC3
                                   ? ms_touch(m.ptr<uint8_t>(MS_STAMP_ROW) + 1, m.cols, 3, &sum)
                                   : -1;
                    ms_record(sh, s, k++, code, now, sum);
                }
            } catch (const std::exception &e) {
                std::fprintf(stderr, "multi_stream_cv: %s\n", e.what());
                __atomic_fetch_add(&sh->s[s].errors, 1, __ATOMIC_RELAXED);
            }
        });
    }
    while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::fflush(stdout);
    std::_Exit(0); // threads may sit in a blocking read of a server that is about to die
}
