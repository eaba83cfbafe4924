// mem_per_frame, scenario 2: the loop most C++ users run today,
// cv::VideoCapture::read into one cv::Mat, cv::imwrite every Nth frame.
// OpenCV 4.6 gives its FFmpeg decoder as many threads as the machine has
// CPUs (it has no property to change that); the harness uses the same count
// for every other scenario.
#include "mem_per_frame.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>
#include <exception>

extern "C" int mpf_cv_save_bgr(const char *path, const uint8_t *data, int stride, int w, int h)
{
    try {
        cv::Mat m(h, w, CV_8UC3, const_cast<uint8_t *>(data), (size_t)stride);
        return cv::imwrite(path, m) ? 0 : -1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "imwrite %s: %s\n", path, e.what());
        return -1;
    }
}

extern "C" int mpf_scenario_opencv(const mpf_opts *o, mpf_run *r)
{
    try {
        cv::VideoCapture cap(o->clip, cv::CAP_FFMPEG);
        if (!cap.isOpened()) {
            std::snprintf(r->note, sizeof r->note, "cv::VideoCapture cannot open %s", o->clip);
            return -1;
        }
        r->width = (int)cap.get(cv::CAP_PROP_FRAME_WIDTH);
        r->height = (int)cap.get(cv::CAP_PROP_FRAME_HEIGHT);
        r->threads = cv::getNumberOfCPUs();
        r->frame_bytes = (uint64_t)r->width * (uint64_t)r->height * 3;
        std::snprintf(r->codec, sizeof r->codec, "%s", cap.getBackendName().c_str());
        cv::Mat frame;
        char path[4096];
        int failed_reads = 0;
        if (mpf_run_start(r, "2 cv::VideoCapture", o->frames, 1, o->progress_tty) < 0)
            return -1;
        for (;;) {
            if (!cap.read(frame)) {
                // End of the clip: rewind, the way OpenCV users loop a file.
                if (++failed_reads > 2) {
                    std::snprintf(r->note, sizeof r->note, "read failed after rewinding");
                    return -1;
                }
                cap.set(cv::CAP_PROP_POS_FRAMES, 0);
                continue;
            }
            failed_reads = 0;
            if (o->save_every > 0 && r->frames % (uint64_t)o->save_every == 0) {
                std::snprintf(path, sizeof path, "%s/cv_%02d.png", o->dir,
                              (int)((r->frames / (uint64_t)o->save_every) % 4));
                cv::imwrite(path, frame);
            }
            if (mpf_frame(r))
                break;
        }
        mpf_run_stop(r);
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(r->note, sizeof r->note, "OpenCV: %s", e.what());
        return -1;
    }
}
