# Warning and sanitizer flags shared by every target.
# _GNU_SOURCE: pipe2, eventfd, timerfd, memmem and friends.
add_compile_definitions(_GNU_SOURCE)
add_compile_options(
  $<$<COMPILE_LANGUAGE:C>:-Wall> $<$<COMPILE_LANGUAGE:C>:-Wextra>
  $<$<COMPILE_LANGUAGE:C>:-Wshadow> $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>
  $<$<COMPILE_LANGUAGE:C>:-Wmissing-prototypes> $<$<COMPILE_LANGUAGE:C>:-Wno-unused-parameter>
  -fno-omit-frame-pointer)
if(MQ_WERROR)
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
if(MQ_SANITIZE)
  add_compile_options(-fsanitize=${MQ_SANITIZE} -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${MQ_SANITIZE})
endif()
# Assertions stay on in every build type (STYLE.md: invariants are checked in release too).
string(REPLACE "-DNDEBUG" "" CMAKE_C_FLAGS_RELWITHDEBINFO "${CMAKE_C_FLAGS_RELWITHDEBINFO}")
string(REPLACE "-DNDEBUG" "" CMAKE_C_FLAGS_RELEASE "${CMAKE_C_FLAGS_RELEASE}")

# The libFuzzer build of tests/fuzz (tests/fuzz/run.sh does all of this):
#   CC=clang CXX=clang++ cmake -B build-fuzz -DMQ_FUZZ=ON -DMQ_SANITIZE=address,undefined
# Every object gets the fuzzer's coverage instrumentation; only the fuzz
# targets link its main().
option(MQ_FUZZ "Build the tests/fuzz targets with libFuzzer (clang only)" OFF)
if(MQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MQ_FUZZ=ON needs clang (CC=clang CXX=clang++; "
                        "scripts/install-fuzz-deps.sh installs it)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
