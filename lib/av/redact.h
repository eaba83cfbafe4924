/*
 * Private to lib/av: hiding the credentials of URLs in everything framepool
 * or FFmpeg prints — messages, events, log lines.
 *
 * Which user-info is hidden is what FFmpeg itself sends as credentials: its
 * URL parser (av_url_split, used by the rtsp, http, rtmp, ... protocols)
 * takes the scheme up to the first ':', skips at most two '/', and takes the
 * authority up to the first '/', '?' or '#'; the user-info is the authority
 * up to its last '@'. So "scheme://u:p@host", "rtsp:/u:p@host" and
 * "rtsp:u:p@host" all carry credentials (each becomes "…***@host"), and a
 * nested URL ("cache:http://u:p@host") is found inside the outer one. An
 * '@' in a path, query or fragment is not user-info and stays.
 */
#ifndef FRAMEPOOL_AV_REDACT_H
#define FRAMEPOOL_AV_REDACT_H

#include <stddef.h>

/* Writes `url` to out[cap] (truncated, NUL-terminated; cap may be 0) with the
 * user-info of every URL in it replaced by three stars ("rtsp://u:p@h/x"
 * gives "rtsp://" "***@h/x"); anything else — no user-info, file paths, an
 * '@' in a path or query — is copied as is. A nested URL starts right after
 * a ':'. Every message, log line or
 * event that shows a URL goes through it. Returns the length of the full
 * result (like snprintf). NULL url gives "(null)". Thread-safe. */
size_t fp__url_redact(const char *url, char *out, size_t cap);

/* The same for a line of text that may hold URLs anywhere (FFmpeg's log
 * lines: "Opening 'http://u:p@h/seg.ts' for reading"): each URL starts at a
 * scheme (letters, digits, '+', '-', '.') at the start of a word (not after
 * a '/'), followed by ':'; its authority also ends at white space. The value of an
 * "Authorization:" header (a request shown at FFmpeg's debug level: Basic
 * carries the password in base64) becomes "***" to the end of its line.
 * Returns the length of the
 * full result; NULL gives "(null)". Thread-safe. */
size_t fp__redact_text(const char *text, char *out, size_t cap);

#endif
