# shellcheck shell=bash
# Shared by scripts/demo and scripts/soak (sourced, not run).

# Builds save_display in build/demo (Release).
fp_build_demo() {
  build=build/demo
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFP_BUILD_TESTS=OFF -DFP_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target save_display >/dev/null
}

# Prints the path of the default clip, making it first if needed: a real
# H.264 encode (B-frames, 2 s GOP) of a 1280x720 test pattern, 20 s at 30 fps.
fp_default_clip() {
  local clip=build/demo/default-clip.mp4
  if [[ ! -s "$clip" ]]; then
    echo "making the default clip (20 s of 1280x720 H.264) with ffmpeg" >&2
    mkdir -p build/demo
    ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30:duration=20 \
      -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 60 -bf 2 "$clip.tmp.mp4"
    mv "$clip.tmp.mp4" "$clip"
  fi
  echo "$clip"
}
