# Nacos discovery and config (nacos.h): libcurl for HTTP, jsmn (header only,
# Debian libjsmn-dev) for the answers. mq_nacos_json is the pure part, which
# the unit tests and the `nacos` fuzz target link without curl or a server.
add_library(mq_nacos_json STATIC ${CMAKE_CURRENT_LIST_DIR}/nacos_json.c)
target_link_libraries(mq_nacos_json PUBLIC mq_config mq_util)
add_library(mq_discovery_nacos STATIC ${CMAKE_CURRENT_LIST_DIR}/nacos.c)
target_link_libraries(mq_discovery_nacos PUBLIC mq_nacos_json mq_cluster mq_config mq_util
                      PkgConfig::CURL Threads::Threads)
target_compile_definitions(mq_discovery_nacos PRIVATE MQ_VERSION="${PROJECT_VERSION}")
