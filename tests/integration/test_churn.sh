#!/usr/bin/env bash
# Churn does not leak. The test starts and removes 50 containers, in rounds of
# 10 at once, while the supervisor runs. After the last round, the
# supervisor's fd count and memory must be what they were after a warm-up
# round, with no zombie, mount, cgroup or state file left behind. Every number
# is counted and printed.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly ROUNDS=5
readonly PER_ROUND=10
# Growth of the supervisor's resident memory that is tolerated between the
# warm-up round and the end: the allocator may keep some freed memory.
readonly RSS_MARGIN_KIB=1024

ids=()

# Print the zombies on the host whose parent is the supervisor, one "pid comm"
# a line. execvisor-init is the supervisor's child, and the agent's other
# processes live in containers that are gone at the end. Zombies of other
# programs on the host are not counted, because other work may leave them.
supervisor_zombies() {
  ps -eo pid=,ppid=,stat=,comm= |
    awk -v supervisor="$SUPERVISOR_PID" '$3 ~ /^Z/ && $2 == supervisor { print $1, $4 }'
}

# Print how many unix connections PID has open to the engine's socket. libcurl
# keeps a few idle connections to reuse, as many as the most requests that
# were in flight at once, so their number depends on timing and not on how
# many containers came and went.
engine_connection_count() {
  ss -xanp | awk -v pid="pid=$1," -v socket="$TEST_DOCKER_SOCKET" '
    $5 == socket { engine[$6] = 1 }
    index($0, pid) { peer[$8] = 1 }
    END { n = 0; for (inode in peer) if (inode in engine) n++; print n }'
}

host_zombie_count() {
  local count

  count=$(ps -eo stat= | grep -c '^Z') || true
  printf '%s\n' "${count:-0}"
}

# Print the mounts of the host's mount namespace and of the supervisor's that
# come from this test: the bundle directories, the test's files and the
# engine's containers.
test_mounts() {
  local file

  for file in /proc/self/mountinfo "/proc/$SUPERVISOR_PID/mountinfo"; do
    grep -E "ecs-execute-command|execvisor-agent|$TEST_TMP|$EXECVISOR_TEST_DOCKER_DIR/" "$file" || true
  done
}

# Print the cgroup directories that are left of the containers in IDS.
leftover_cgroups() {
  local id

  for id in "$@"; do
    compgen -G "/sys/fs/cgroup/*/docker/$id" || true
    compgen -G "/sys/fs/cgroup/*/docker/$id/$AGENT_CGROUP_NAME" || true
  done
}

no_churn_container_listed() {
  local json

  json=$(checked_status_json 2>/dev/null) || return 1
  [[ $(jq '[.[] | select(.ContainerName | startswith("churn-"))] | length' <<<"$json") == 0 ]]
}

# run_round ROUND: start PER_ROUND containers at once, wait until each has a
# running agent, then remove them all at once and wait until each is STOPPED.
run_round() {
  local round=$1 i name names=() round_ids=() id started_ms jobs=()

  started_ms=$(_now_ms)
  for ((i = 1; i <= PER_ROUND; i++)); do
    names+=("churn-$round-$i")
  done
  # A bare `wait` would wait for the supervisor too, so only these jobs.
  for name in "${names[@]}"; do
    run_container "$name" --label "$SUPERVISOR_SELECT_LABEL" >/dev/null &
    jobs+=("$!")
  done
  wait "${jobs[@]}" || fail "starting the containers of round $round failed"

  for name in "${names[@]}"; do
    id=$(docker inspect --format '{{.Id}}' "$name") || fail "container $name was not created"
    round_ids+=("$id")
  done
  for id in "${round_ids[@]}"; do
    wait_agent_state "$id" RUNNING
  done

  docker rm --force "${round_ids[@]}" >/dev/null
  for id in "${round_ids[@]}"; do
    _agent_gone_or_stopped "$id" || wait_for --timeout 10 _agent_gone_or_stopped "$id"
  done
  ids+=("${round_ids[@]}")
  note "round $round: $PER_ROUND containers started, injected and removed in $(($(_now_ms) - started_ms)) ms"
}

# After its container was removed, an agent is STOPPED "container exited", or
# already forgotten.
_agent_gone_or_stopped() {
  local entry

  entry=$(agent_status_entry "$1" 2>/dev/null) || return 1
  [[ -z $entry ]] && return 0
  [[ $(jq -r '.LastStatus + "|" + .Reason' <<<"$entry") == "STOPPED|container exited" ]]
}

# measure LABEL: print the numbers and set fds (without the engine
# connections), engine_connections, rss, zombies and mounts.
measure() {
  local all_fds zombie_count=0

  wait_for --timeout 20 no_churn_container_listed
  all_fds=$(settled_fd_count "$SUPERVISOR_PID")
  engine_connections=$(engine_connection_count "$SUPERVISOR_PID")
  fds=$((all_fds - engine_connections))
  rss=$(process_rss_kib "$SUPERVISOR_PID")
  zombies=$(supervisor_zombies)
  if [[ -n $zombies ]]; then
    zombie_count=$(wc -l <<<"$zombies")
  fi
  mounts=$(test_mounts | wc -l)
  note "$1: supervisor fds $all_fds ($engine_connections of them engine connections), VmRSS $rss KiB, zombie children $zombie_count (zombies on the host: $(host_zombie_count)), test mounts $mounts, state files $(find "$TEST_STATE_DIR/containers" -type f | wc -l)"
}

churn_started_ms=$(_now_ms)
# Containers are forgotten 1 s after they exit, so that after the rounds the
# supervisor keeps no fd for them and its fd count can be compared.
start_supervisor_synced --restart-backoff-min 200ms --restart-backoff-max 1s --forget-after 1s

measure "before any container"
mounts_before=$mounts

run_round 1
measure "after the warm-up round"
fds_warm=$fds
rss_warm=$rss
mounts_warm=$mounts

for ((round = 2; round <= ROUNDS; round++)); do
  run_round "$round"
done
measure "after $ROUNDS rounds ($((ROUNDS * PER_ROUND)) containers)"

assert_eq "$fds_warm" "$fds" "supervisor fd count (without engine connections) after all rounds, compared with after the warm-up round"
# One connection for the event stream, and at most one idle connection for
# each request of a round that was in flight at once.
((engine_connections <= PER_ROUND + 1)) ||
  fail "the supervisor holds $engine_connections connections to the engine after all rounds, more than $((PER_ROUND + 1))"
((rss <= rss_warm + RSS_MARGIN_KIB)) ||
  fail "the supervisor's VmRSS grew from $rss_warm KiB after the warm-up round to $rss KiB after all rounds (margin $RSS_MARGIN_KIB KiB)"
assert_eq "" "$zombies" "zombie children of the supervisor (pid comm)"
assert_eq "$mounts_warm" "$mounts" "number of the test's mounts after all rounds, compared with after the warm-up round"
assert_eq "$mounts_before" "$mounts" "number of the test's mounts after all rounds, compared with before any container"
assert_eq "" "$(leftover_cgroups "${ids[@]}")" "cgroup directories left of the removed containers"
assert_eq 0 "$(find "$TEST_STATE_DIR/containers" -type f | wc -l)" "state files left after every container was forgotten"
assert_eq $((ROUNDS * PER_ROUND)) "$(grep -c 'agent injected and started' "$SUPERVISOR_LOG")" "agents injected"
assert_eq 0 "$(grep -c 'agent not started' "$SUPERVISOR_LOG" || true)" "failed injections in the supervisor log"

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
note "churn took $(($(_now_ms) - churn_started_ms)) ms"
