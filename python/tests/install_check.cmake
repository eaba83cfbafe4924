# Installs the build into a scratch prefix and imports the installed package
# with the interpreter the binding was built for (-P: not from the build
# tree, which is the working directory).
# Arguments: BUILD_DIR, WORK_DIR, PYDIR (relative install dir), PYTHON.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed: ${err}")
endif()
set(ENV{PYTHONPATH} ${WORK_DIR}/${PYDIR})
execute_process(COMMAND ${PYTHON} -P -c
  "import framepool, sys; f = framepool.__file__; assert f.startswith(sys.argv[1]), f; print(f)"
  ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import from the installed prefix failed: ${out}${err}")
endif()
message(STATUS "installed package: ${out}")
