/* Redaction of credentials (lib/av/redact.c): every user-info form FFmpeg's
 * URL parser (av_url_split) takes, in whole URLs and inside log lines. */
#include "redact.h" /* lib/av */
#include "testutil.h"

#include <framepool/reader.h>

#include <libavformat/avformat.h>
#include <string.h>

static void url_is(const char *url, const char *want)
{
    char out[512];
    size_t n = fp__url_redact(url, out, sizeof out);
    ck_assert_msg(strcmp(out, want) == 0, "fp__url_redact('%s') = '%s', want '%s'", url, out,
                  want);
    ck_assert_uint_eq(n, strlen(want));
}

static void text_is(const char *text, const char *want)
{
    char out[1024];
    size_t n = fp__redact_text(text, out, sizeof out);
    ck_assert_msg(strcmp(out, want) == 0, "fp__redact_text('%s') = '%s', want '%s'", text, out,
                  want);
    ck_assert_uint_eq(n, strlen(want));
}

START_TEST(scheme_slash_slash)
{
    url_is("rtsp://user:pass@cam.local:554/stream", "rtsp://***@cam.local:554/stream");
    url_is("rtsp://user@cam.local/stream", "rtsp://***@cam.local/stream");
    url_is("rtsp://u:p@host", "rtsp://***@host");
    url_is("rtsp://@host/x", "rtsp://***@host/x");
    url_is("tcp://u:p@127.0.0.1:9?listen=0", "tcp://***@127.0.0.1:9?listen=0");
    url_is("rtmp://pub:key@10.0.0.2/live/cam", "rtmp://***@10.0.0.2/live/cam");
    url_is("srt://u:p@127.0.0.1:9000?mode=caller", "srt://***@127.0.0.1:9000?mode=caller");
    url_is("HTTP://U:P@HOST/", "HTTP://***@HOST/");
    url_is("crypto+http://u:p@h/x", "crypto+http://***@h/x");
    /* the last '@' of the authority ends the user-info, as FFmpeg parses it */
    url_is("rtsp://admin:p@ss@[::1]:8554/live", "rtsp://***@[::1]:8554/live");
    url_is("rtsp://u:p@[2001:db8::7]/x", "rtsp://***@[2001:db8::7]/x");
    url_is("rtsp://u:p%40w@h/x", "rtsp://***@h/x");
}
END_TEST

START_TEST(short_forms)
{
    /* av_url_split skips at most two '/' after the scheme: FFmpeg sends these
     * credentials too */
    url_is("rtsp:/user:secret@127.0.0.1:8554/x", "rtsp:/***@127.0.0.1:8554/x");
    url_is("rtsp:user:secret@127.0.0.1:8554/x", "rtsp:***@127.0.0.1:8554/x");
    url_is("http:u:p@h", "http:***@h");
    /* three slashes: an empty authority, no credentials */
    url_is("rtsp:///u:p@h/x", "rtsp:///u:p@h/x");
}
END_TEST

START_TEST(nested)
{
    url_is("cache:http://u:p@h/x", "cache:http://***@h/x");
    url_is("async:cache:rtsp:/u:p@h", "async:cache:rtsp:/***@h");
    url_is("subfile,,start,0,end,0,,:http://u:p@h/a", "subfile,,start,0,end,0,,:http://***@h/a");
}
END_TEST

START_TEST(not_user_info)
{
    url_is("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream");
    url_is("http://host/path/a@b.ts?q=c@d#e@f", "http://host/path/a@b.ts?q=c@d#e@f");
    url_is("http://host?u=a@b", "http://host?u=a@b");
    url_is("http://u:p@host/a@b", "http://***@host/a@b");
    url_is("rtsp://[fe80::1]:554/a@b", "rtsp://[fe80::1]:554/a@b");
    /* file names: FFmpeg takes no credentials from them */
    url_is("/tmp/clips/user:pass@x.mp4", "/tmp/clips/user:pass@x.mp4");
    url_is("clips/a@b.mp4", "clips/a@b.mp4");
    url_is("a@b:c.mp4", "a@b:c.mp4");
    url_is("file:/tmp/a@b.mp4", "file:/tmp/a@b.mp4");
    url_is("file:///tmp/a@b.mp4", "file:///tmp/a@b.mp4");
    url_is("", "");
    url_is(NULL, "(null)");
}
END_TEST

/* What FFmpeg itself takes as the authorization is exactly what is hidden. */
START_TEST(agrees_with_av_url_split)
{
    static const char *urls[] = {
        "rtsp://user:pass@cam.local:554/stream", "rtsp:/user:pass@h:1/x", "rtsp:user:pass@h",
        "http://a:b@c@d/e@f", "rtmp://k@h/live?x=y@z", "tcp://h:1?a=b@c", "srt://u:p@h:9#f@g",
        "rtsp://[::1]/a@b", "udp://u@h:5", "rtsp:///u:p@h",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char proto[64], auth[256], host[256], path[256], out[512];
        int port = 0;
        av_url_split(proto, sizeof proto, auth, sizeof auth, host, sizeof host, &port, path,
                     sizeof path, urls[i]);
        fp__url_redact(urls[i], out, sizeof out);
        if (auth[0])
            ck_assert_msg(!strstr(out + strlen(proto) + 1, auth), "'%s' -> '%s' still shows '%s'", urls[i], out,
                          auth);
        else
            ck_assert_msg(strcmp(out, urls[i]) == 0, "'%s' -> '%s' with no user-info",
                          urls[i], out);
        /* the host FFmpeg connects to is still shown */
        ck_assert_msg(strstr(out, host), "'%s' -> '%s' lost the host '%s'", urls[i], out, host);
    }
}
END_TEST

START_TEST(text_lines)
{
    text_is("Opening 'http://user:SECRET@127.0.0.1:8080/seg3.ts' for reading",
            "Opening 'http://***@127.0.0.1:8080/seg3.ts' for reading");
    text_is("Opening 'http://user:SECRET@127.0.0.1:8080' for reading",
            "Opening 'http://***@127.0.0.1:8080' for reading");
    text_is("two: rtsp://a:b@h/x and rtmp:/c:d@i/y.", "two: rtsp://***@h/x and rtmp:/***@i/y.");
    text_is("url rtsp:u:p@h;next", "url rtsp:***@h;next");
    text_is("Input #0, hls, from 'http://u:p@h/i.m3u8':", "Input #0, hls, from 'http://***@h/i.m3u8':");
    /* nothing to hide */
    text_is("Stream #0:0: Video: h264 (High), yuv420p, 768x432, 10 fps",
            "Stream #0:0: Video: h264 (High), yuv420p, 768x432, 10 fps");
    text_is("Connection to tcp://127.0.0.1:9?timeout=0 failed: Connection refused",
            "Connection to tcp://127.0.0.1:9?timeout=0 failed: Connection refused");
    text_is("[rtsp @ 0x55d0] method DESCRIBE failed: 401 Unauthorized",
            "[rtsp @ 0x55d0] method DESCRIBE failed: 401 Unauthorized");
    text_is("mail user@example.org", "mail user@example.org");
    text_is("Opening '/clips/user:pass@x.mp4' for reading",
            "Opening '/clips/user:pass@x.mp4' for reading");
    /* a request shown at debug level: the credentials header */
    text_is("request: GET /i.m3u8 HTTP/1.1\r\nAuthorization: Basic dXNlcjpTRUNSRVQ=\r\nHost: h",
            "request: GET /i.m3u8 HTTP/1.1\r\nAuthorization: ***\r\nHost: h");
    text_is("Proxy-Authorization: Digest username=\"u\", response=\"abc\"",
            "Proxy-Authorization: ***");
    text_is("", "");
    text_is(NULL, "(null)");
}
END_TEST

START_TEST(truncation)
{
    char small[12];
    size_t n = fp__url_redact("rtsp://user:secret@host/x", small, sizeof small);
    ck_assert_str_eq(small, "rtsp://***@");
    ck_assert_uint_eq(n, strlen("rtsp://***@host/x"));
    /* cut inside the user-info: still none of it */
    char tiny[9];
    fp__redact_text("x rtsp://user:secret@h", tiny, sizeof tiny);
    ck_assert_str_eq(tiny, "x rtsp:/");
    ck_assert_uint_eq(fp__url_redact("rtsp://u:p@h", NULL, 0), strlen("rtsp://***@h"));
    char one[1] = {'z'};
    fp__url_redact("rtsp://u:p@h", one, 1);
    ck_assert_int_eq(one[0], 0);
}
END_TEST

/* Every line with a URL in any form, one secret: never in the output. */
/* The public fp_url_redact is the same redaction, and measures without writing. */
START_TEST(public_entry_point)
{
    const char *forms[] = {"rtsp://u:pw@cam/live", "rtsp:/u:pw@cam/live", "rtsp:u:pw@cam",
                           "cache:http://u:pw@h/x.ts", "/clips/u:pw@x.mp4", NULL};
    for (int i = 0; forms[i]; i++) {
        char a[128], b[128];
        size_t na = fp_url_redact(forms[i], a, sizeof a);
        size_t nb = fp__url_redact(forms[i], b, sizeof b);
        ck_assert_str_eq(a, b);
        ck_assert_uint_eq(na, nb);
        ck_assert_uint_eq(fp_url_redact(forms[i], NULL, 0), na);
    }
    char out[64];
    fp_url_redact("rtsp:/u:pw@cam/live", out, sizeof out);
    ck_assert_str_eq(out, "rtsp:/***@cam/live");
}
END_TEST

START_TEST(secret_never_survives)
{
    static const char *forms[] = {"rtsp://%s@h/x",  "rtsp:/%s@h/x",       "rtsp:%s@h/x",
                                  "'http://%s@h'",  "(rtmp://%s@h:1935)", "x,srt://%s@h?y",
                                  "cache:tcp://%s@h", "\"rtsp://%s@h/x\""};
    static const char *creds[] = {"alice:Zq9-SECRET", "Zq9-SECRET", "a:Zq9-SECRET@x",
                                  "Zq9-SECRET:", ":Zq9-SECRET"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        for (size_t j = 0; j < sizeof creds / sizeof creds[0]; j++) {
            char line[256], out[512];
            char url[128];
            snprintf(url, sizeof url, forms[i], creds[j]);
            snprintf(line, sizeof line, "failed on %s: gone", url);
            fp__redact_text(line, out, sizeof out);
            ck_assert_msg(!strstr(out, "SECRET"), "'%s' -> '%s'", line, out);
            size_t sl = strspn(url, "abcdefghijklmnopqrstuvwxyz+-.");
            if (sl == 0 || url[sl] != ':')
                continue; /* not a URL by itself: FFmpeg opens it as a file */
            fp__url_redact(url, out, sizeof out);
            ck_assert_msg(!strstr(out, "SECRET"), "'%s' -> '%s'", url, out);
        }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redact");
    TCase *tc = tcase_create("redact");
    tcase_add_test(tc, scheme_slash_slash);
    tcase_add_test(tc, short_forms);
    tcase_add_test(tc, nested);
    tcase_add_test(tc, not_user_info);
    tcase_add_test(tc, agrees_with_av_url_split);
    tcase_add_test(tc, text_lines);
    tcase_add_test(tc, truncation);
    tcase_add_test(tc, secret_never_survives);
    tcase_add_test(tc, public_entry_point);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
