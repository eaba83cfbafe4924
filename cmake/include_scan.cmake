# Shared by the layering checks (check_core_deps.cmake, check_av_imports.cmake),
# run in script mode (cmake -P) with CC set to the C compiler.
#
# fp_header_deps(SRC OUT DIR...): sets OUT to the make-style dependency list
# of SRC (every header it pulls in, directly or through another header),
# preprocessed as C11 with -I for each DIR. A file that does not preprocess
# stops the check with the compiler's message: a check that cannot read a
# file must not pass.
function(fp_header_deps src out)
  set(flags "")
  foreach(dir ${ARGN})
    list(APPEND flags -I${dir})
  endforeach()
  execute_process(COMMAND ${CC} -std=c11 -D_POSIX_C_SOURCE=200809L ${flags} -x c -M ${src}
                  OUTPUT_VARIABLE deps ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "layering check: cannot preprocess ${src}:\n${err}")
  endif()
  set(${out} "${deps}" PARENT_SCOPE)
endfunction()
