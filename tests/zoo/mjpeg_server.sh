#!/bin/sh
# A cheap camera's MJPEG over HTTP (multipart/x-mixed-replace), for framepool's
# live tests: mjpeg_server.sh SECONDS ffmpeg ARGS...
# The ffmpeg command (tests/zoo.c builds it: an mpjpeg muxer with -listen 1)
# serves one client per run; like a camera, this serves the next client when
# one goes away, for SECONDS in all. @RUN@ in ARGS becomes the run's number
# (1, 2, ...), e.g. for a log file per run. The ffmpeg serving now is this
# shell's child (SIGSTOP goes to it).
set -u
seconds=$1
shift
end=$(( $(date +%s) + seconds ))
run=0
serve() {
  n=$#
  for a do
    case $a in
      *@RUN@*) a="${a%%@RUN@*}$run${a#*@RUN@}" ;;
    esac
    set -- "$@" "$a"
  done
  shift "$n"
  "$@"
}
while [ "$(date +%s)" -lt "$end" ]; do
  run=$((run + 1))
  serve "$@" || sleep 0.2
done
