/*
 * Credentials out of URLs and log lines (redact.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "redact.h"

#include "framepool/reader.h" /* fp_url_redact */

#include <string.h>
#include <strings.h>

/* RFC 3986's scheme characters, in ASCII whatever the locale. */
static int scheme_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '-' || c == '.';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* If a URL starts at s and has user-info, sets [*b, *e) to it and returns 1.
 * The parse is av_url_split's: scheme ':', at most two '/', the authority to
 * the first '/', '?' or '#' (or white space in text), user-info to its last
 * '@'. */
static int userinfo_at(const char *s, int text, const char **b, const char **e)
{
    const char *p = s;
    while (scheme_char(*p))
        p++;
    if (p == s || *p != ':')
        return 0;
    p++;
    if (*p == '/')
        p++;
    if (*p == '/')
        p++;
    const char *auth = p, *at = NULL;
    for (; *p && *p != '/' && *p != '?' && *p != '#' && !(text && is_space(*p)); p++)
        if (*p == '@')
            at = p;
    if (!at)
        return 0;
    *b = auth;
    *e = at;
    return 1;
}

typedef struct sink {
    char *out;
    size_t cap, n;
} sink;

static void put(sink *k, const char *s, size_t len)
{
    if (k->n + 1 < k->cap) {
        size_t room = k->cap - 1 - k->n;
        memcpy(k->out + k->n, s, len < room ? len : room);
    }
    k->n += len;
}

static size_t redact(const char *in, char *out, size_t cap, int text)
{
    if (!in)
        in = "(null)";
    sink k = {out, cap, 0};
    const char *p = in, *copied = in;
    while (*p) {
        const char *b, *e;
        /* an HTTP or RTSP request shown in a debug line: its credentials header
         * (Basic is the password in base64, Digest a replayable answer) */
        if (text && (*p == 'A' || *p == 'a') && strncasecmp(p, "authorization:", 14) == 0) {
            p += 14;
            while (*p == ' ' || *p == '\t')
                p++;
            put(&k, copied, (size_t)(p - copied));
            put(&k, "***", 3);
            p += strcspn(p, "\r\n");
            copied = p;
            continue;
        }
        /* Where a URL may begin. A URL: at its start, and right after a ':'
         * (nested protocols: "cache:http://...", "subfile,,...,:http://...").
         * A line: at every word start, except after a '/' (file paths such
         * as "/clips/user:pass@x.mp4" are not URLs). */
        int start = p == in || (text ? !scheme_char(p[-1]) && p[-1] != '/' : p[-1] == ':');
        if (start && userinfo_at(p, text, &b, &e)) {
            put(&k, copied, (size_t)(b - copied));
            put(&k, "***", 3);
            copied = p = e; /* from the '@' on: the host, then the rest */
            continue;
        }
        p++;
    }
    put(&k, copied, (size_t)(p - copied));
    if (cap)
        out[k.n < cap ? k.n : cap - 1] = '\0';
    return k.n;
}

size_t fp__url_redact(const char *url, char *out, size_t cap)
{
    return redact(url, out, cap, 0);
}

size_t fp_url_redact(const char *url, char *out, size_t cap)
{
    return redact(url, out, cap, 0);
}

size_t fp__redact_text(const char *text, char *out, size_t cap)
{
    return redact(text, out, cap, 1);
}
