#!/usr/bin/env python3
"""A loopback RTSP server for framepool's live-source tests (GStreamer).

Usage: rtsp_server.py PORT [WIDTHxHEIGHT] [SECONDS] [options]
Serves rtsp://127.0.0.1:PORT/test: a live test pattern in H.264 (one shared
media for every client), over RTP/UDP or RTP/TCP as the client asks. Exits
after SECONDS (default 120) so a crashed test leaves nothing running.
Options, for servers set up the way cameras are:
  --fps N               frame rate (default 25)
  --gop S               seconds between keyframes (default 1)
  --auth basic|digest   require USER:PASS (--user) with that method
  --user USER:PASS      the credentials (default admin:secret)
  --session-timeout S   drop a session without keep-alive after S seconds
                        (GStreamer's default is 60)
  --stamp-epoch US      draw the making time into each picture (tests/zoo.h:
                        centiseconds of CLOCK_REALTIME since US microseconds)
                        and log each frame made to --made-log FILE
  --events FILE         append what happens, one line each, "T what"
                        (T: CLOCK_MONOTONIC seconds): listening, each
                        client's connection and requests, the media's
                        preparation and states, the keyframes made
Prints "ready" on stdout once it listens. SIGTERM closes every client's
connection and ends the server (a graceful stop). Needs python3-gi,
gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-{base,good,ugly}
(scripts/setup installs them).
"""
import argparse
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


EVENTS = None


def event(what):
    if EVENTS:
        EVENTS.write(f"{time.monotonic():.6f} {what}\n")


class Stamper:
    """Frames for appsrc: a moving bar and the stamp of tests/zoo.h (a white
    and a black reference square, then 18 bits of the making time in
    centiseconds since the epoch), made at the frame rate on the main loop
    while the media plays, each logged as FFmpeg's metadata filter does."""

    def __init__(self, a, w, h):
        self.a, self.w, self.h = a, w, h
        self.log = open(a.made_log, "a", buffering=1) if a.made_log else None
        self.frame = 0
        self.src = None
        self.timer = 0

    def configure(self, factory, media):
        # a new media encodes anew: its frame 0 is a keyframe
        self.frame = 0
        self.src = media.get_element().get_child_by_name("src")
        media.connect("unprepared", self.unprepared)
        event("media configured")
        media.connect("prepared", lambda m: event("media prepared"))
        media.connect("new-state", lambda m, st: event(f"media state {int(st)}"))
        if not self.timer:
            self.next_t = time.monotonic()
            self.timer = GLib.timeout_add(5, self.tick)

    def unprepared(self, media):
        event("media unprepared")
        self.src = None

    def picture(self, cs):
        w, h = self.w, self.h
        y = bytearray(b"\x50") * (w * h)
        bar = (self.frame * 4) % w
        for row in range(16, h):
            y[row * w + bar:row * w + min(w, bar + 16)] = b"\xe0" * min(16, w - bar)
        def square(i, v):
            for row in range(16):
                y[row * w + 16 * i:row * w + 16 * i + 16] = bytes([v]) * 16
        if w >= 320 and h >= 16:
            for row in range(16):
                y[row * w:row * w + 320] = b"\x10" * 320
            square(0, 235)
            for k in range(18):
                if (cs >> k) & 1:
                    square(2 + k, 235)
        return bytes(y) + b"\x80" * (2 * (w // 2) * (h // 2))

    def tick(self):
        if self.src is None:
            self.timer = 0
            return False
        now = time.monotonic()
        if now < self.next_t:
            return True
        # frames made before the media plays would wait in appsrc, or be
        # flushed: make (and log) frames only while it plays
        _, state, _ = self.src.get_state(0)
        if state != Gst.State.PLAYING:
            self.frame = 0
            self.next_t = now
            return True
        self.next_t += 1.0 / self.a.fps
        if self.next_t < now:
            self.next_t = now + 1.0 / self.a.fps
        made = time.time_ns() // 1000 - self.a.stamp_epoch
        cs = (made // 10000) & ((1 << 18) - 1)
        buf = Gst.Buffer.new_wrapped(self.picture(cs))
        if self.src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            self.timer = 0
            return False
        if self.log:
            self.log.write(f"frame:{self.frame} pts:{made} pts_time:{made / 1e6:.6f}\n")
        if self.frame % max(1, int(round(self.a.gop * self.a.fps))) == 0:
            event(f"keyframe made (frame {self.frame})")
        self.frame += 1
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port")
    ap.add_argument("size", nargs="?", default="320x240")
    ap.add_argument("seconds", nargs="?", type=float, default=120.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=float, default=1.0)
    ap.add_argument("--auth", choices=("basic", "digest"))
    ap.add_argument("--user", default="admin:secret")
    ap.add_argument("--session-timeout", type=int, default=0)
    ap.add_argument("--stamp-epoch", type=int, default=0)
    ap.add_argument("--made-log")
    ap.add_argument("--events")
    a = ap.parse_args()
    global EVENTS
    EVENTS = open(a.events, "a", buffering=1) if a.events else None
    w, h = a.size.split("x")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(a.port)
    factory = GstRtspServer.RTSPMediaFactory()
    keyint = max(1, int(round(a.gop * a.fps)))
    encode = (f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyint} "
              "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    if a.stamp_epoch:
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            f"caps=video/x-raw,format=I420,width={w},height={h},framerate={a.fps}/1 "
            + encode)
        factory.connect("media-configure", Stamper(a, int(w), int(h)).configure)
    else:
        factory.set_launch(
            "( videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width={w},height={h},framerate={a.fps}/1 " + encode)
    factory.set_shared(True)

    if a.auth:
        user, pw = a.user.split(":", 1)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if a.auth == "basic":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, pw), token)
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(user, pw, token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.from_string(
            "user, media.factory.access=(boolean)true, "
            "media.factory.construct=(boolean)true")[0])

    if a.session_timeout > 0:
        def on_session(client, session):
            session.set_timeout(a.session_timeout)

        def on_client(srv, client):
            client.connect("new-session", on_session)

        server.connect("client-connected", on_client)
        # expired sessions are only removed when the pool is cleaned up
        pool = server.get_session_pool()
        GLib.timeout_add(500, lambda: pool.cleanup() >= 0)

    if EVENTS:
        def on_connected(srv, client):
            n = id(client) % 10000
            event(f"client {n} connected")
            for sig in ("describe", "setup", "play", "teardown"):
                client.connect(f"{sig}-request", lambda c, ctx, s=sig: event(f"client {n} {s}"))
            client.connect("closed", lambda c: event(f"client {n} closed"))

        server.connect("client-connected", on_connected)

    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print("rtsp_server: cannot listen on port", a.port, file=sys.stderr)
        sys.exit(2)
    print("ready", flush=True)
    event("listening")
    loop = GLib.MainLoop()
    GLib.timeout_add(int(a.seconds * 1000), loop.quit)

    def on_term():
        # a service manager's stop (SIGTERM), as deployments handle it: close
        # every client's connection (their sessions and the shared media go
        # with them), then end
        event("SIGTERM")
        server.client_filter(lambda srv, client: GstRtspServer.RTSPFilterResult.REMOVE)
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, on_term)
    loop.run()


if __name__ == "__main__":
    main()
