#!/usr/bin/env python3
"""A loopback RTSP server for framepool's live-source tests (GStreamer).

Usage: rtsp_server.py PORT [WIDTHxHEIGHT] [SECONDS]
Serves rtsp://127.0.0.1:PORT/test: a live test pattern in H.264 at 25 fps
(one shared media for every client), over RTP/UDP or RTP/TCP as the client
asks. Exits after SECONDS (default 120) so a crashed test leaves nothing
running. Needs python3-gi, gir1.2-gst-rtsp-server-1.0 and
gstreamer1.0-plugins-{base,good,ugly} (scripts/setup installs them).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port = sys.argv[1]
    w, h = (sys.argv[2] if len(sys.argv) > 2 else "320x240").split("x")
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={w},height={h},framerate=25/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print("rtsp_server: cannot listen on port", port, file=sys.stderr)
        sys.exit(2)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
