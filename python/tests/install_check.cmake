# Installs the build into a scratch prefix and imports the installed package
# with the interpreter the binding was built for (-P: not from the build
# tree, which is the working directory).
# Arguments: BUILD_DIR, WORK_DIR, PYDIR (install dir, relative to the prefix,
# or absolute: then installed under DESTDIR=WORK_DIR), PYTHON.
file(REMOVE_RECURSE ${WORK_DIR})
if(IS_ABSOLUTE ${PYDIR})
  set(ENV{DESTDIR} ${WORK_DIR})
  set(PYDIR_FULL ${WORK_DIR}${PYDIR})
else()
  set(PYDIR_FULL ${WORK_DIR}/${PYDIR})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed: ${err}")
endif()
# Typed: the stubs and the PEP 561 marker are installed with the package.
foreach(f __init__.py __init__.pyi _framepool.pyi _types.py py.typed)
  if(NOT EXISTS ${PYDIR_FULL}/framepool/${f})
    message(FATAL_ERROR "not installed: ${PYDIR_FULL}/framepool/${f}")
  endif()
endforeach()
set(ENV{PYTHONPATH} ${PYDIR_FULL})
execute_process(COMMAND ${PYTHON} -P -c
  "import framepool, sys; f = framepool.__file__; assert f.startswith(sys.argv[1]), f; print(f)"
  ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import from the installed prefix failed: ${out}${err}")
endif()
message(STATUS "installed package: ${out}")
