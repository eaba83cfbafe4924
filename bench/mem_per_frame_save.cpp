// mem_per_frame: cv::imwrite for the plain libav scenarios, which have a BGR
// AVFrame and save it the way a C++ user would (a Mat header over it).
#include "mem_per_frame.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

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
