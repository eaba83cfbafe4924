# Fails when any lib/core or lib/measure source pulls in an FFmpeg or OpenCV
# header, directly or through another header, or when a lib/core source
# includes lib/measure (measure is built on the core, never the other way).
# Run as: cmake -DCC=... -DINCLUDE=... -DCORE=... -DMEASURE=... -P
include(${CMAKE_CURRENT_LIST_DIR}/include_scan.cmake)
file(GLOB sources ${CORE}/*.c ${CORE}/*.h)
file(GLOB measure_sources ${MEASURE}/*.c ${MEASURE}/*.h)
file(GLOB public_headers ${INCLUDE}/framepool/*.h)
list(FILTER public_headers EXCLUDE REGEX "/(cv|reader)\\.h$")
foreach(src ${sources} ${measure_sources} ${public_headers})
  fp_header_deps(${src} deps ${INCLUDE} ${CORE} ${MEASURE})
  if(deps MATCHES "(libav[a-z]*|libsw[a-z]*|opencv[0-9]*)/")
    message(FATAL_ERROR "core dependency check: ${src} includes a header from "
                        "'${CMAKE_MATCH_1}': lib/core and lib/measure must build with "
                        "libc, pthreads and the core only")
  endif()
  list(FIND sources ${src} in_core)
  if(NOT in_core EQUAL -1 AND deps MATCHES "(lib/measure/[a-z_]+\\.h|framepool/measure\\.h)")
    message(FATAL_ERROR "core dependency check: ${src} includes '${CMAKE_MATCH_1}': "
                        "lib/measure is built on the core, the core never uses it")
  endif()
endforeach()
