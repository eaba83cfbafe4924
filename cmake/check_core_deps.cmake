# Fails when any lib/core source pulls in an FFmpeg or OpenCV header, directly
# or through another header. Run as: cmake -DCC=... -DINCLUDE=... -DCORE=... -P
file(GLOB sources ${CORE}/*.c ${CORE}/*.h)
file(GLOB public_headers ${INCLUDE}/framepool/*.h)
list(FILTER public_headers EXCLUDE REGEX "/(cv|reader)\\.h$")
list(APPEND sources ${public_headers})
foreach(src ${sources})
  execute_process(COMMAND ${CC} -std=c11 -D_POSIX_C_SOURCE=200809L -I${INCLUDE} -I${CORE}
                          -x c -M ${src}
                  OUTPUT_VARIABLE deps ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "core dependency check: cannot preprocess ${src}:\n${err}")
  endif()
  if(deps MATCHES "(libav[a-z]*|libsw[a-z]*|opencv[0-9]*)/")
    message(FATAL_ERROR "core dependency check: ${src} includes a header from "
                        "'${CMAKE_MATCH_1}': lib/core must build with libc and pthreads only")
  endif()
endforeach()
