# Fails when libmq_core.a defines a global symbol without the core's
# prefixes: mq_raft_ (the public API), raft_ and rlog_ (cross-file helpers,
# core/core.h). The agent links gRPC, libwebsockets and curl into one
# binary; a plain global `quorum` or `send_msg` in there is a clash waiting
# to happen. Run by ctest:
#   cmake -DNM=<nm> -DLIB=<libmq_core.a> -P symbols.cmake
if(NOT NM OR NOT LIB)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DLIB=<archive> -P symbols.cmake")
endif()
execute_process(COMMAND ${NM} -g --defined-only ${LIB}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${LIB}: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(good 0)
set(bad "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>"; member headers ("log.c.o:") and blanks skip.
  if(NOT line MATCHES "^[0-9a-fA-F]+ [A-Za-z] ([^ ]+)$")
    continue()
  endif()
  set(name ${CMAKE_MATCH_1})
  if(name MATCHES "^(mq_raft_|raft_|rlog_)")
    math(EXPR good "${good} + 1")
  elseif(name MATCHES "^__(asan|ubsan|sanitizer|odr_asan|sancov)")
    # sanitizer instrumentation, in MQ_SANITIZE and fuzz builds
  else()
    string(APPEND bad "  ${name}\n")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "global symbols of ${LIB} without the prefix mq_raft_, raft_ or rlog_ "
                      "(make them static, or prefix them; core/core.h says why):\n${bad}")
endif()
if(good EQUAL 0)
  message(FATAL_ERROR "no symbols read from ${LIB}: is ${NM} the right nm?")
endif()
message(STATUS "${good} global symbols of ${LIB}, all prefixed")
