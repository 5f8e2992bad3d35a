# mq_protoc_c(<target> <proto files relative to proto/>...)
# Compiles .proto files with protoc-c into a static library <target>, and
# writes a binary FileDescriptorProto per file (<name>.pb) for reflection.
find_program(PROTOC protoc REQUIRED)
find_program(PROTOC_C protoc-c REQUIRED)

function(mq_protoc_c target)
  set(srcs)
  set(descs)
  set(out ${CMAKE_BINARY_DIR}/gen)
  foreach(p ${ARGN})
    string(REGEX REPLACE "\\.proto$" "" base ${p})
    set(c ${out}/${base}.pb-c.c)
    set(h ${out}/${base}.pb-c.h)
    set(d ${out}/${base}.desc)
    add_custom_command(
      OUTPUT ${c} ${h} ${d}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
      COMMAND ${PROTOC_C} -I${CMAKE_SOURCE_DIR}/proto --c_out=${out} ${p}
      COMMAND ${PROTOC} -I${CMAKE_SOURCE_DIR}/proto --descriptor_set_out=${d} ${p}
      DEPENDS ${CMAKE_SOURCE_DIR}/proto/${p}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/proto
      COMMENT "protoc-c ${p}")
    list(APPEND srcs ${c})
    list(APPEND descs ${d})
  endforeach()
  add_library(${target} STATIC ${srcs} ${descs})
  target_include_directories(${target} PUBLIC ${out})
  target_link_libraries(${target} PUBLIC PkgConfig::PROTOBUFC)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${target} PRIVATE -w)
endfunction()
