#!/usr/bin/env bash
# Agents outlive their supervisor: a supervisor that is killed or stopped
# leaves them running, and the next one on the same state directory adopts
# them (same pid, restart count kept) and never starts a second agent. With
# --stop-agents-on-exit, SIGTERM stops them, with SIGKILL for an agent that is
# still running after --stop-grace. A corrupt state file is skipped and its
# container ends up with exactly one agent.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly SUPERVISOR_OPTIONS=(--restart-backoff-min 200ms --restart-backoff-max 1s)

# Agent pids and start times by container id, as last recorded.
declare -A agent_pid agent_start

# remember_agent CONTAINER: record the pid and start time of CONTAINER's agent.
remember_agent() {
  local container=$1 pid

  wait_agent_state "$container" RUNNING
  pid=$(agent_status_field "$container" Pid)
  agent_pid[$container]=$pid
  agent_start[$container]=$(process_start_time "$pid")
}

# assert_same_agent CONTAINER WHAT: the agent recorded for CONTAINER runs
# still, with the same start time, and is the only agent in the container.
assert_same_agent() {
  local container=$1 what=$2 pid=${agent_pid[$1]}

  pid_running "$pid" || fail "$what: the agent (pid $pid) of container $container no longer runs"
  assert_eq "${agent_start[$container]}" "$(process_start_time "$pid")" \
    "$what: start time of pid $pid in container $container (a different start time is a new process)"
  assert_eq 1 "$(count_agents "$container")" "$what: number of agents in container $container"
}

# assert_adopted CONTAINER RESTART_COUNT WHAT: the supervisor reports the
# recorded agent of CONTAINER as RUNNING with RESTART_COUNT restarts.
assert_adopted() {
  local container=$1 restart_count=$2 what=$3

  wait_agent_state "$container" RUNNING
  assert_eq "${agent_pid[$container]}" "$(agent_status_field "$container" Pid)" "$what: Pid of container $container"
  assert_eq "$restart_count" "$(agent_status_field "$container" RestartCount)" "$what: RestartCount of container $container"
  assert_same_agent "$container" "$what"
}

no_agents_in() {
  local container

  for container in "$@"; do
    [[ $(count_agents "$container") == 0 ]] || return 1
  done
}

start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}"

a=$(run_agent_container super-a '')
b=$(run_agent_container super-b '')
remember_agent "$a"
remember_agent "$b"

# Give b a restart, so that a kept count differs from a reset one.
kill -KILL "${agent_pid[$b]}"
wait_agent_state --timeout 5 "$b" RUNNING "${agent_pid[$b]}"
remember_agent "$b"
assert_eq 1 "$(agent_status_field "$b" RestartCount)" "RestartCount of super-b after its agent was killed"

# --- the supervisor is killed --------------------------------------------------

kill_supervisor_hard
status=0
output=$("$EXECVISOR_BIN" status --state-dir "$TEST_STATE_DIR" 2>&1) || status=$?
assert_eq 1 "$status" "exit status of execvisor status with no supervisor running"
assert_contains "$output" "no daemon is running" "output of execvisor status with no supervisor running"

# The agents run on while no supervisor watches them.
sleep 1
assert_same_agent "$a" "while no supervisor runs"
assert_same_agent "$b" "while no supervisor runs"

mark=$(supervisor_log_mark)
start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}"
assert_adopted "$a" 0 "after a restart of the killed supervisor"
assert_adopted "$b" 1 "after a restart of the killed supervisor"
log=$(supervisor_log_since "$mark")
assert_eq 1 "$(count_matching_lines "$log" "container ${a:0:12} name=\"super-a\": adopted the running agent")" "adoptions of super-a in the log"
assert_eq 1 "$(count_matching_lines "$log" "container ${b:0:12} name=\"super-b\": adopted the running agent")" "adoptions of super-b in the log"
assert_eq 0 "$(count_matching_lines "$log" "agent injected and started")" "agents started by the new supervisor"

# An adopted agent is watched like any other: it is restarted when it dies.
kill -KILL "${agent_pid[$a]}"
wait_agent_state --timeout 5 "$a" RUNNING "${agent_pid[$a]}"
remember_agent "$a"
assert_eq 1 "$(agent_status_field "$a" RestartCount)" "RestartCount of super-a after its adopted agent was killed"
assert_eq 1 "$(count_agents "$a")" "number of agents in super-a after its adopted agent was killed"

# --- the supervisor is stopped with SIGTERM (agents left running) --------------

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
assert_same_agent "$a" "after SIGTERM to the supervisor"
assert_same_agent "$b" "after SIGTERM to the supervisor"

start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}" --stop-agents-on-exit --stop-grace 1s
assert_adopted "$a" 1 "after a restart of the supervisor stopped with SIGTERM"
assert_adopted "$b" 1 "after a restart of the supervisor stopped with SIGTERM"

# --- --stop-agents-on-exit, with an agent that ignores SIGTERM -----------------

stubborn=$(run_agent_container super-stubborn 'ignore-sigterm=1')
remember_agent "$stubborn"

mark=$(supervisor_log_mark)
stop_started_ms=$(_now_ms)
stop_supervisor
stop_ms=$(($(_now_ms) - stop_started_ms))
note "the supervisor with --stop-agents-on-exit --stop-grace 1s took $stop_ms ms to exit"
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor with --stop-agents-on-exit after SIGTERM"
for container in "$a" "$b" "$stubborn"; do
  assert_eq 0 "$(count_agents "$container")" "number of agents in $container after the supervisor stopped them"
  pid_running "${agent_pid[$container]}" && fail "agent pid ${agent_pid[$container]} of $container runs after the supervisor stopped it"
done
((stop_ms >= 900)) || fail "the supervisor exited after $stop_ms ms, before the 1 s grace of the agent that ignores SIGTERM"
((stop_ms <= 6000)) || fail "the supervisor took $stop_ms ms to stop agents with --stop-grace 1s"
assert_contains "$(supervisor_log_since "$mark")" 'name="super-stubborn": agent still running after the grace period; killed its tree' "supervisor log"
# SIGTERM came first: the agents saw it.
assert_file_contains "$TEST_LOG_DIR/.output/super-stubborn.log" "test-agent: SIGTERM, ignored" "output of the agent that ignores SIGTERM"
assert_file_contains "$TEST_LOG_DIR/.output/super-a.log" "test-agent: SIGTERM, exiting" "output of super-a's agent"

# The next supervisor starts one new agent in each container.
start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}"
for container in "$a" "$b" "$stubborn"; do
  remember_agent "$container"
done
sleep 1
for container in "$a" "$b" "$stubborn"; do
  assert_same_agent "$container" "after a supervisor stopped the agents and a new one started"
done

# --- a corrupt state file ------------------------------------------------------

stop_supervisor
state_file=$TEST_STATE_DIR/containers/$a.json
[[ -f $state_file ]] || fail "no state file $state_file"
# A torn write: the first 40 bytes of the JSON, with no closing brace.
truncated=$(head -c 40 "$state_file")
printf '%s' "$truncated" >"$state_file"

mark=$(supervisor_log_mark)
start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}"
wait_agent_state "$a" RUNNING
assert_adopted "$b" 1 "after a restart beside a corrupt state file"
log=$(supervisor_log_since "$mark")
assert_contains "$log" "skipping state file $TEST_STATE_DIR/containers/$a.json" "supervisor log after a restart with a truncated state file"
sleep 1
expect_eq 1 "$(count_agents "$a")" "number of agents in super-a after its state file was corrupt (pids: $(agent_tree_pids "$a" | tr '\n' ' '))"
expect_eq RUNNING "$(agent_status_field "$a" LastStatus)" "LastStatus of super-a after its state file was corrupt"
jq -e . "$state_file" >/dev/null 2>&1 || fail_later "the state file $state_file is still not valid JSON after the agent started: $(cat "$state_file")"

stop_supervisor

# --- a stopped container stays listed across a restart ---------------------------

gone=$(run_agent_container super-gone '')
start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}" --forget-after 6s
wait_agent_state "$gone" RUNNING
docker stop -t 1 "$gone" >/dev/null
wait_agent_state "$gone" STOPPED
kill_supervisor_hard
start_supervisor_synced "${SUPERVISOR_OPTIONS[@]}" --forget-after 6s
expect_eq STOPPED "$(agent_status_field "$gone" LastStatus)" "LastStatus of a stopped container after a restart of the supervisor"
expect_eq "container exited" "$(agent_status_field "$gone" Reason)" "Reason of a stopped container after a restart of the supervisor"
# It is still forgotten after --forget-after, and its state file removed.
wait_for --timeout 15 bash -c "! \"\$EXECVISOR_BIN\" status --state-dir '$TEST_STATE_DIR' --json | jq -e --arg c '$gone' '.[] | select(.ContainerId == \$c)' >/dev/null"
[[ ! -e $TEST_STATE_DIR/containers/$gone.json ]] || fail_later "the state file of the forgotten container $gone is still there"

stop_supervisor
finish_deferred_checks
