# Installs the build into a scratch prefix, then builds and runs tests/install/
# consumer.c against it with pkg-config and with find_package(framepool).
# Arguments: BUILD_DIR, SRC_DIR, WORK_DIR, CC.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# framepool-stat is installed and runs (no PID: usage, exit status 2).
file(GLOB_RECURSE stat_tool ${prefix}/*/framepool-stat)
if(NOT stat_tool)
  message(FATAL_ERROR "framepool-stat is not installed under ${prefix}")
endif()
execute_process(COMMAND ${stat_tool} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "usage: framepool-stat")
  message(FATAL_ERROR "framepool-stat without arguments: exit ${rc}, ${err}")
endif()

# pkg-config, shared library.
file(GLOB_RECURSE pcs ${prefix}/*/framepool.pc)
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
run(pkg-config --cflags framepool)
string(STRIP "${last_output}" cflags)
run(pkg-config --libs framepool)
string(STRIP "${last_output}" libs)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
get_filename_component(libdir ${pcdir} DIRECTORY)
run(${CC} -std=c11 ${cflags} ${SRC_DIR}/consumer.c ${libs} -Wl,-rpath,${libdir}
    -o ${WORK_DIR}/consumer_pkgconfig)
run(${WORK_DIR}/consumer_pkgconfig)
message(STATUS "pkg-config consumer: ${last_output}")

# The static archive, with FFmpeg's shared libraries (pkg-config --static would
# ask for static builds of FFmpeg's own dependencies, which Debian does not
# ship): framepool.pc names them in Requires.private.
run(pkg-config --print-requires-private framepool)
string(REGEX REPLACE "[\r\n]+" " " reqs "${last_output}")
separate_arguments(reqs UNIX_COMMAND "${reqs}")
set(dep_libs "")
if(reqs)
  run(pkg-config --libs ${reqs})
  string(STRIP "${last_output}" dep_libs)
  separate_arguments(dep_libs UNIX_COMMAND "${dep_libs}")
endif()
run(${CC} -std=c11 ${cflags} ${SRC_DIR}/consumer.c ${libdir}/libframepool.a ${dep_libs}
    -lpthread -lm -o ${WORK_DIR}/consumer_pkgconfig_static)
run(${WORK_DIR}/consumer_pkgconfig_static)

# find_package, shared and static targets.
run(${CMAKE_COMMAND} -S ${SRC_DIR} -B ${WORK_DIR}/cmake-build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_C_COMPILER=${CC})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/consumer_shared)
message(STATUS "find_package consumer (shared): ${last_output}")
run(${WORK_DIR}/cmake-build/consumer_static)
message(STATUS "find_package consumer (static): ${last_output}")
