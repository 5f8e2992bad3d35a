# Headless-Service DNS discovery (--dns-name): getaddrinfo for A/AAAA,
# res_nquery and ns_parserr from libresolv for SRV.
add_library(mq_discovery_dns STATIC dns.c)
target_link_libraries(mq_discovery_dns PUBLIC mq_cluster mq_config mq_util resolv)
