// mem_per_frame_cv, scenario 2 of mem_per_frame: the loop most C++ users
// run today, cv::VideoCapture::read into one cv::Mat, cv::imwrite every Nth
// frame. A program of its own, linking what that loop needs (OpenCV's core,
// imgcodecs and videoio; framepool only for fp_memtrack), as mem_per_frame
// links what the framepool and libav loops need: each process's RssAnon is
// what a user's program running that loop would have. mem_per_frame runs it.
// OpenCV 4.6 gives its FFmpeg decoder as many threads as the machine has
// CPUs (it has no property to change that); the harness uses the same count
// for every other scenario.
#include "mem_per_frame.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

static int scenario_opencv(const mpf_opts *o, mpf_run *r)
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
        long clip_frames = (long)cap.get(cv::CAP_PROP_FRAME_COUNT);
        if (mpf_run_start(r, "2 cv::VideoCapture", o->frames, clip_frames, 1, o->progress_tty) <
            0)
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

int main(int argc, char **argv)
{
    mpf_run r;
    std::memset(&r, 0, sizeof r);
    r.base_rss = mpf_rss_now();
    mpf_opts o;
    const char *id, *result, *points;
    if (mpf_child_parse(argc, argv, &o, &id, &result, &points) < 0 || std::strcmp(id, "2")) {
        std::fprintf(stderr, "mem_per_frame_cv: run by mem_per_frame (scenario 2)\n");
        return 2;
    }
    int rc = scenario_opencv(&o, &r);
    if (rc < 0 && r.note[0])
        std::fprintf(stderr, "mem_per_frame_cv: %s\n", r.note);
    if (mpf_write_result(result, points, &r, rc) < 0)
        rc = -1;
    fp_unref(&r.mt);
    std::free(r.pts);
    return rc < 0 ? 1 : 0;
}
