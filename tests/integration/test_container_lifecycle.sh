#!/usr/bin/env bash
# The agent follows its container's lifecycle. A container that stops takes
# its agent with it (STOPPED "container exited"), and the supervisor releases
# its cgroups and fds. A container that starts again, by hand or by its
# restart policy, gets a new agent. A removed container is forgotten after
# --forget-after. A container whose root file system is read-only is reported
# with the failed mount, and nothing half-mounted is left. The session limit
# label reaches the agent's configuration.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# docker stop sends SIGTERM, which a `sleep` as PID 1 ignores, so a short stop
# timeout keeps the test fast.
readonly STOP_TIMEOUT=1

agent_bundle_of() {
  local argv0

  argv0=$(process_argv0 "$1")
  printf '%s\n' "${argv0%/*}"
}

# assert_agent_in_container CONTAINER PID: PID is the agent and runs in the
# pid namespace of CONTAINER's current init.
assert_agent_in_container() {
  local container=$1 pid=$2

  pid_running "$pid" || fail "agent pid $pid of container $container does not run"
  [[ $(process_argv0 "$pid") == /ecs-execute-command-*/amazon-ssm-agent ]] ||
    fail "pid $pid of container $container is not the agent: $(process_argv0 "$pid")"
  grep -qx "$pid" <<<"$(container_namespace_pids "$container")" ||
    fail "agent pid $pid is not in the pid namespace of the current init of container $container"
}

container_init_changed() {
  local pid

  pid=$(container_pid "$1" 2>/dev/null) || return 1
  [[ $pid != 0 && $pid != "$2" ]]
}

agent_not_listed() {
  local entry

  entry=$(agent_status_entry "$1") || return 1
  [[ -z $entry ]]
}

no_agent_cgroups_left() {
  [[ -z $(existing_agent_cgroups "$@") ]]
}

# Print the lines of MOUNTINFO (a /proc/PID/mountinfo text) whose mount point
# is the agent's log directory or a bundle directory.
agent_mounts() {
  awk '$5 == "/var/log/amazon/ssm" || $5 ~ /^\/ecs-execute-command-/' <<<"$1"
}

start_supervisor_synced --restart-backoff-min 200ms --restart-backoff-max 1s
supervisor_pid=$SUPERVISOR_PID

# --- docker stop and docker start --------------------------------------------

fds_before=$(settled_fd_count "$supervisor_pid")
id=$(run_agent_container life-stop '')
wait_agent_state "$id" RUNNING
first_pid=$(agent_status_field "$id" Pid)
assert_agent_in_container "$id" "$first_pid"

mapfile -t cgroup_dirs < <(container_cgroup_dirs "$id")
((${#cgroup_dirs[@]} > 0)) || fail "found no cgroup directory of container life-stop"
mapfile -t agent_cgroups < <(existing_agent_cgroups "${cgroup_dirs[@]}")
note "agent cgroups of life-stop: ${agent_cgroups[*]}"
assert_eq "${#cgroup_dirs[@]}" "${#agent_cgroups[@]}" "number of the container's cgroups that have an agent cgroup"

# One restart first, so that the count that must survive the stop is not 0.
kill -KILL "$first_pid"
wait_agent_state --timeout 5 "$id" RUNNING "$first_pid"
second_pid=$(agent_status_field "$id" Pid)
assert_eq 1 "$(agent_status_field "$id" RestartCount)" "RestartCount after the agent was killed"

mark=$(supervisor_log_mark)
docker stop --time "$STOP_TIMEOUT" "$id" >/dev/null
wait_agent_state --timeout 10 "$id" STOPPED
assert_eq "container exited" "$(agent_status_field "$id" Reason)" "Reason after docker stop"
assert_eq 0 "$(agent_status_field "$id" Pid)" "Pid after docker stop"
if pid_running "$second_pid" && [[ $(process_argv0 "$second_pid") == */amazon-ssm-agent ]]; then
  fail "the agent (pid $second_pid) still runs after its container stopped"
fi

wait_for --timeout 5 no_agent_cgroups_left "${cgroup_dirs[@]}"
for dir in "${cgroup_dirs[@]}"; do
  [[ ! -d $dir ]] || fail "the container's cgroup $dir is left after docker stop"
done

[[ -d $TEST_LOG_DIR/life-stop ]] || fail "the host log directory $TEST_LOG_DIR/life-stop is gone after docker stop"
reports=("$TEST_LOG_DIR/life-stop"/test-agent-*.report)
[[ -f ${reports[0]} ]] || fail "the agent's files in $TEST_LOG_DIR/life-stop are gone after docker stop"

# The supervisor does not restart the agent of a container that stopped: its
# exit is reported once, as the container's exit, and the restart count stays.
sleep 1.5
log=$(supervisor_log_since "$mark")
expect_eq 1 "$(agent_status_field "$id" RestartCount)" "RestartCount after docker stop"
expect_eq 0 "$(count_matching_lines "$log" 'name="life-stop": agent not started')" \
  "attempts to start the agent of the stopped container life-stop (log: $log)"
expect_eq 0 "$(count_matching_lines "$log" 'name="life-stop": agent killed by signal')" \
  "log lines that report the container's exit as an agent crash (log: $log)"

fds_stopped=$(settled_fd_count "$supervisor_pid")
note "supervisor fds: $fds_before before the container, $fds_stopped after it stopped"
if [[ $fds_stopped != "$fds_before" ]]; then
  fail_later "supervisor fd count after docker stop: expected $fds_before (as before the container ran), got $fds_stopped; its fds are:
$(describe_fds "$supervisor_pid")"
fi

docker start "$id" >/dev/null
wait_agent_state --timeout 10 "$id" RUNNING "$second_pid"
third_pid=$(agent_status_field "$id" Pid)
assert_agent_in_container "$id" "$third_pid"
assert_eq 1 "$(count_agents "$id")" "number of agents after docker start"
assert_eq 1 "$(agent_status_field "$id" RestartCount)" "RestartCount after docker start (kept, not reset)"
assert_eq "${#cgroup_dirs[@]}" "$(existing_agent_cgroups "${cgroup_dirs[@]}" | wc -l)" \
  "number of agent cgroups after docker start"

init_pid=$(container_pid "$id")
docker restart --time "$STOP_TIMEOUT" "$id" >/dev/null
wait_for --timeout 10 container_init_changed "$id" "$init_pid"
wait_agent_state --timeout 10 "$id" RUNNING "$third_pid"
fourth_pid=$(agent_status_field "$id" Pid)
assert_agent_in_container "$id" "$fourth_pid"
assert_eq 1 "$(count_agents "$id")" "number of agents after docker restart"
assert_eq 1 "$(agent_status_field "$id" RestartCount)" "RestartCount after docker restart (kept, not reset)"

# A second stop releases as much as the first: nothing leaks per cycle.
docker stop --time "$STOP_TIMEOUT" "$id" >/dev/null
wait_agent_state --timeout 10 "$id" STOPPED
wait_for --timeout 5 no_agent_cgroups_left "${cgroup_dirs[@]}"
fds_stopped_again=$(settled_fd_count "$supervisor_pid")
assert_eq "$fds_stopped" "$fds_stopped_again" "supervisor fd count after the second docker stop, compared with the first"

# --- a restart policy: each run of the container gets its own agent ------------

policy=$(run_agent_container life-policy '' --restart always -- sleep 3)
wait_agent_state --timeout 10 "$policy" RUNNING
agent_pid=$(agent_status_field "$policy" Pid)
assert_agent_in_container "$policy" "$agent_pid"
for run in 2 3; do
  init_pid=$(container_pid "$policy")
  wait_for --timeout 15 container_init_changed "$policy" "$init_pid"
  wait_agent_state --timeout 10 "$policy" RUNNING "$agent_pid"
  agent_pid=$(agent_status_field "$policy" Pid)
  assert_agent_in_container "$policy" "$agent_pid"
  assert_eq 1 "$(count_agents "$policy")" "number of agents in run $run of the restart-policy container"
  note "run $run of life-policy: init $(container_pid "$policy"), agent $agent_pid"
done
# The agent went down with its container each time; that is not an agent restart.
expect_eq 0 "$(agent_status_field "$policy" RestartCount)" "RestartCount of the restart-policy container's agent"
docker rm --force "$policy" >/dev/null

# --- a read-only root file system --------------------------------------------

mark=$(supervisor_log_mark)
readonly_id=$(run_agent_container life-readonly '' --read-only)
wait_agent_state --timeout 5 "$readonly_id" STOPPED
reason=$(agent_status_field "$readonly_id" Reason)
note "reason for the read-only container: $reason"
assert_contains "$reason" "/ecs-execute-command-" "Reason for a read-only root file system"
assert_contains "$reason" "Read-only file system" "Reason for a read-only root file system"
mountinfo=$(cat "/proc/$(container_pid "$readonly_id")/mountinfo")
assert_eq "" "$(agent_mounts "$mountinfo")" "agent mounts left in the read-only container"
sleep 1.5
assert_eq STOPPED "$(agent_status_field "$readonly_id" LastStatus)" "LastStatus of the read-only container later"
assert_eq 0 "$(agent_status_field "$readonly_id" RestartCount)" "RestartCount of the read-only container"
assert_eq 1 "$(count_matching_lines "$(supervisor_log_since "$mark")" 'name="life-readonly": agent not started')" \
  "number of attempts to start the agent in the read-only container"
# NOTE: the empty agent cgroups of the failed launch stay until the container
# exits (runc removes them with the container's cgroup); this is only shown.
mapfile -t readonly_cgroup_dirs < <(container_cgroup_dirs "$readonly_id")
note "agent cgroups left in the read-only container: $(existing_agent_cgroups "${readonly_cgroup_dirs[@]}" | wc -l)"

# --- the session limit label --------------------------------------------------

limited=$(run_agent_container life-session-limit '' --label execvisor.session-limit=7)
plain=$(run_agent_container life-session-default '')
for container in "$limited" "$plain"; do
  wait_agent_state "$container" RUNNING
done
limited_pid=$(agent_status_field "$limited" Pid)
plain_pid=$(agent_status_field "$plain" Pid)
limited_config=/proc/$limited_pid/root$(agent_bundle_of "$limited_pid")/configuration/amazon-ssm-agent.json
plain_config=/proc/$plain_pid/root$(agent_bundle_of "$plain_pid")/configuration/amazon-ssm-agent.json
assert_eq 7 "$(jq -r '.Mgs.SessionWorkersLimit' "$limited_config")" \
  "Mgs.SessionWorkersLimit in the agent configuration with execvisor.session-limit=7"
assert_eq 2 "$(jq -r '.Mgs.SessionWorkersLimit' "$plain_config")" \
  "Mgs.SessionWorkersLimit in the agent configuration without the label"

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
_remove_test_containers

# --- --forget-after -------------------------------------------------------------

TEST_STATE_DIR=$TEST_TMP/state-forget
start_supervisor_synced --forget-after 2s
fds_before=$(settled_fd_count "$SUPERVISOR_PID")

forgotten=$(run_agent_container life-forget '')
wait_agent_state "$forgotten" RUNNING
state_file=$TEST_STATE_DIR/containers/$forgotten.json
[[ -f $state_file ]] || fail "no state file $state_file for a running container"

docker rm --force "$forgotten" >/dev/null
wait_agent_state --timeout 5 "$forgotten" STOPPED
stopped_ms=$(_now_ms)
assert_eq "container exited" "$(agent_status_field "$forgotten" Reason)" "Reason of a removed container"
wait_for --timeout 10 agent_not_listed "$forgotten"
elapsed_ms=$(($(_now_ms) - stopped_ms))
note "life-forget was listed for $elapsed_ms ms after it was seen STOPPED (--forget-after 2s)"
((elapsed_ms >= 1500)) || fail "the removed container was forgotten after $elapsed_ms ms, before --forget-after 2s"
((elapsed_ms <= 5000)) || fail "the removed container was forgotten only after $elapsed_ms ms, not about 2 s"
[[ ! -e $state_file ]] || fail "the state file $state_file is left after the container was forgotten"
fds_forgotten=$(settled_fd_count "$SUPERVISOR_PID")
if [[ $fds_forgotten != "$fds_before" ]]; then
  fail_later "supervisor fd count after the container was forgotten: expected $fds_before, got $fds_forgotten; its fds are:
$(describe_fds "$SUPERVISOR_PID")"
fi

stop_supervisor
finish_deferred_checks
