# Fails when a lower stage of the reader (lib/av: input, decoder, convert,
# ahead, bridge) reaches up: includes, directly or through another header,
# a header of the orchestrators (engine.h, source.h, live.h, or the old
# readerpriv.h), or calls an orchestrator's function (fp__engine_*,
# fp__conn_*, fp__reader_*, fp__live_*, or the public fp_reader_* API).
# Also fails when `struct fp_reader` is defined anywhere but reader.c.
# Run as: cmake -DCC=... -DINCLUDE=... -DCORE=... -DAV=... -P
include(${CMAKE_CURRENT_LIST_DIR}/include_scan.cmake)
set(stages input readahead decoder convert ahead bridge)
set(up_headers "(engine|source|live|readerpriv)\\.h")
set(up_calls "(fp__engine_[a-z_]+|fp__conn_[a-z_]+|fp__reader_[a-z_]+|fp__live_[a-z_]+|fp_reader_[a-z_]+)[ \t\n]*\\(")
set(failures "")
foreach(stage ${stages})
  foreach(src ${AV}/${stage}.c ${AV}/${stage}.h)
    if(NOT EXISTS ${src})
      continue()
    endif()
    fp_header_deps(${src} deps ${INCLUDE} ${CORE} ${AV})
    if(deps MATCHES "/lib/av/${up_headers}")
      string(APPEND failures "  ${src} includes lib/av/${CMAKE_MATCH_1}.h (an orchestrator's header)\n")
    endif()
    # the code without comments (string literals may name functions: drop them too)
    execute_process(COMMAND ${CC} -x c -fpreprocessed -dD -E -P ${src}
                    OUTPUT_VARIABLE code ERROR_VARIABLE err RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "lib/av import check: cannot strip comments of ${src}:\n${err}")
    endif()
    string(REGEX REPLACE "\"([^\"\\\\]|\\\\.)*\"" "\"\"" code "${code}")
    if(code MATCHES "${up_calls}")
      string(APPEND failures "  ${src} calls ${CMAKE_MATCH_1} (an orchestrator's function)\n")
    endif()
  endforeach()
endforeach()
file(GLOB av_files ${AV}/*.c ${AV}/*.h)
foreach(f ${av_files})
  get_filename_component(name ${f} NAME)
  if(NOT name STREQUAL "reader.c")
    file(STRINGS ${f} hits REGEX "struct fp_reader[ \t]*{")
    if(hits)
      string(APPEND failures "  ${f} defines struct fp_reader (only reader.c may)\n")
    endif()
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "lib/av import check: a lower stage reaches up to the orchestrator:\n"
                      "${failures}The stages (input, decoder, convert, ahead, bridge) return "
                      "errors as values; only engine.c and reader.c orchestrate.")
endif()
message(STATUS "lib/av import check: the stages do not reach up")
