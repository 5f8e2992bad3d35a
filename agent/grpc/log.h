/* gRPC's own log lines (gpr_log) in the agent's log: same format, node id
 * and JSON option as every other line, under the component "grpc".
 *
 * A refused TLS handshake is the one thing gRPC reports about a peer that
 * the agent gets no hook for (the server sees no call), and gRPC logs it
 * at every attempt, so a peer retrying with a foreign certificate would
 * flood the log. Those lines become one WARN per MQ_GRPC_LOG_EVERY_MS,
 * with the count of the ones held back. */
#ifndef MQ_GRPC_LOG_H
#define MQ_GRPC_LOG_H

#define MQ_GRPC_LOG_EVERY_MS 30000

/* Routes gpr_log to util/log.h for the whole process. Call once, before
 * grpc_init(). */
void mq_grpc_log_route(void);

#endif
