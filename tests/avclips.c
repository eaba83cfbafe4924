#define _POSIX_C_SOURCE 200809L
#include "avclips.h"

#include <errno.h>
#include <libavutil/imgutils.h>
#include <libavutil/md5.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *clip_dir(void)
{
    static char dir[1024];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/testclips", FP_BINARY_DIR);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            perror(dir);
            return NULL;
        }
    }
    return dir;
}

const char *clip_make(const char *name, const char *args, char *path, size_t cap)
{
    const char *dir = clip_dir();
    if (!dir)
        return NULL;
    snprintf(path, cap, "%s/%s", dir, name);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > 0)
        return path;
    const char *ext = strrchr(name, '.');
    char tmp[1200], cmd[4096];
    snprintf(tmp, sizeof tmp, "%s/tmp-%ld-%s", dir, (long)getpid(), name);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -loglevel error -nostdin -y %s -f %s '%s' </dev/null", args,
             ext && !strcmp(ext, ".mkv")    ? "matroska"
             : ext && !strcmp(ext, ".ts")   ? "mpegts"
             : ext && !strcmp(ext, ".webm") ? "webm"
             : ext && !strcmp(ext, ".avi")  ? "avi"
             : ext && !strcmp(ext, ".wav")  ? "wav"
             : ext && !strcmp(ext, ".y4m")  ? "yuv4mpegpipe"
                                            : "mp4",
             tmp);
    if (system(cmd) != 0) {
        fprintf(stderr, "clip generation failed: %s\n", cmd);
        unlink(tmp);
        return NULL;
    }
    if (rename(tmp, path) != 0) {
        perror("rename");
        return NULL;
    }
    return path;
}

int oracle_md5(const char *path, const char *extra, char (*md5)[33], int max)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -loglevel error -nostdin -i '%s' -map 0:v:0 -fps_mode "
             "passthrough -autoscale 0 %s -f framemd5 - </dev/null",
             path, extra ? extra : "");
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        if (line[0] == '#')
            continue;
        char *h = strrchr(line, ',');
        if (!h)
            continue;
        h++;
        while (*h == ' ')
            h++;
        if (n < max) {
            memcpy(md5[n], h, 32);
            md5[n][32] = 0;
        }
        n++;
    }
    int st = pclose(p);
    return st == 0 ? n : -1;
}

void image_md5(const fp_image *img, char hex[33])
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(img->av_format);
    int linesize[4];
    hex[0] = 0;
    if (!d || av_image_fill_linesizes(linesize, img->av_format, img->width) < 0)
        return;
    struct AVMD5 *m = av_md5_alloc();
    av_md5_init(m);
    int np = av_pix_fmt_count_planes(img->av_format);
    for (int p = 0; p < np; p++) {
        int h = (p == 1 || p == 2) ? -((-img->height) >> d->log2_chroma_h) : img->height;
        for (int y = 0; y < h; y++)
            av_md5_update(m, img->data[p] + (ptrdiff_t)y * img->stride[p], linesize[p]);
    }
    uint8_t s[16];
    av_md5_final(m, s);
    av_free(m);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", s[i]);
}

const char *shared_videos(void)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/../shared/videos", FP_SOURCE_DIR);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("NOTICE: %s is absent: the real-footage cases are skipped\n", dir);
        return NULL;
    }
    return dir;
}

int clip_corrupt_copy(const char *src, const char *dst, int stride, double keep)
{
    FILE *f = fopen(src, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    if (stride > 0)
        for (long i = n / 3; i < 2 * n / 3; i += stride)
            buf[i] ^= 0xFF;
    long len = keep > 0 && keep < 1 ? (long)(n * keep) : n;
    f = fopen(dst, "wb");
    if (!f) {
        free(buf);
        return -1;
    }
    int ok = fwrite(buf, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    free(buf);
    return ok ? 0 : -1;
}
