#!/bin/sh
# nginx with libnginx-mod-rtmp on loopback, for framepool's live tests:
#   nginx_rtmp.sh PREFIX RTMP_PORT HTTP_PORT
# Writes PREFIX/nginx.conf and runs nginx in the foreground as one process
# (daemon off, no master: SIGSTOP/SIGCONT and SIGKILL reach the server
# itself). rtmp://127.0.0.1:RTMP_PORT/live/<name> takes a publisher and
# serves players, as a streaming server is usually set up (live on, no GOP
# cache: a player starts at the next keyframe); http://127.0.0.1:HTTP_PORT/hls/
# serves PREFIX/hls (an HLS playlist written there by ffmpeg's hls muxer).
# The process is killed by the test that started it (PR_SET_PDEATHSIG
# survives the exec). Needs nginx and libnginx-mod-rtmp (scripts/setup).
set -eu
prefix=$1 rtmp_port=$2 http_port=$3
module=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$module" ] || { echo "nginx_rtmp.sh: $module missing (Debian package libnginx-mod-rtmp)" >&2; exit 3; }
mkdir -p "$prefix/hls" "$prefix/tmp" "$prefix/logs"
cat > "$prefix/nginx.conf" <<CONF
load_module $module;
daemon off;
master_process off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 128; }
rtmp {
    server {
        listen 127.0.0.1:$rtmp_port;
        chunk_size 4096;
        ping 10s;
        application live {
            live on;
            record off;
            drop_idle_publisher 10s;
        }
    }
}
http {
    access_log off;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    types {
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }
    server {
        listen 127.0.0.1:$http_port;
        location /hls/ {
            root $prefix;
            add_header Cache-Control no-cache;
        }
    }
}
CONF
exec nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log"
