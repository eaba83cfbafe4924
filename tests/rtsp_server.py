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
Prints "ready" on stdout once it listens. Needs python3-gi,
gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-{base,good,ugly}
(scripts/setup installs them).
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


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
    a = ap.parse_args()
    w, h = a.size.split("x")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(a.port)
    factory = GstRtspServer.RTSPMediaFactory()
    keyint = max(1, int(round(a.gop * a.fps)))
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={w},height={h},framerate={a.fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyint} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
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

    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print("rtsp_server: cannot listen on port", a.port, file=sys.stderr)
        sys.exit(2)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(a.seconds * 1000), loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
