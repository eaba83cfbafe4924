#!/bin/sh
# A cheap camera's MJPEG over HTTP (multipart/x-mixed-replace), for framepool's
# live tests: mjpeg_server.sh PORT SIZE FPS SECONDS
# ffmpeg's mpjpeg muxer with -listen 1 serves one client per run; like a
# camera, this serves the next client when one goes away, for SECONDS in all.
# The ffmpeg serving now is this shell's child (SIGSTOP goes to it).
set -u
port=$1 size=$2 fps=$3 seconds=$4
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
  ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi \
    -i "testsrc2=size=$size:rate=$fps" -t "$seconds" -c:v mjpeg -q:v 6 \
    -f mpjpeg -listen 1 "http://127.0.0.1:$port/cam.mjpg" || sleep 0.2
done
