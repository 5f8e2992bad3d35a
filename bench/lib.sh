# shellcheck shell=bash
# Helpers shared by the bench/ scripts (sourced, not run).

# memory_by_structure HTTP_PORT: the agent's own memory accounting,
# memquorum_shard_memory_bytes summed over shards, as "structure=bytes ..."
# on one line.
memory_by_structure() {
  curl -s "127.0.0.1:$1/metrics" |
    sed -n 's/^memquorum_shard_memory_bytes{.*structure="\([a-z_]*\)"} \([0-9.e+]*\)$/\1 \2/p' |
    awk '{ sum[$1] += $2 } END { for (s in sum) printf "%s=%.0f ", s, sum[s] }'
}
