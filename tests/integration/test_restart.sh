#!/usr/bin/env bash
# The supervisor restarts an agent that exits, whatever its exit status, with
# backoff. Once it has restarted an agent --max-restarts times, the next exit
# stops the agent for good, with a reason that names the count, the last
# status and the last output line. An agent that cannot start is not retried.
# An invalid duration on the command line is rejected.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly MAX_RESTARTS=3
# Longer than the longest restart delay (--restart-backoff-max 1s plus a fifth
# of jitter), so that a restart that should not happen would have happened.
readonly QUIET_PERIOD=2

# assert_agent_process CONTAINER PID: PID is the agent, running in CONTAINER's
# pid namespace.
assert_agent_process() {
  local container=$1 pid=$2 argv0

  pid_running "$pid" || fail "agent pid $pid of container $container does not run"
  argv0=$(process_argv0 "$pid")
  if [[ $argv0 != /ecs-execute-command-*/amazon-ssm-agent ]]; then
    fail "pid $pid of container $container runs '$argv0', not the agent"
  fi
  if ! grep -qx "$pid" <<<"$(container_namespace_pids "$container")"; then
    fail "agent pid $pid is not in the pid namespace of container $container"
  fi
}

restart_count_at_least() {
  local count

  count=$(agent_status_field "$1" RestartCount 2>/dev/null) || return 1
  [[ -n $count ]] && ((count >= $2))
}

# assert_stays_stopped CONTAINER RESTART_COUNT: after QUIET_PERIOD, the agent
# of CONTAINER is still STOPPED with no pid and the same restart count, and no
# agent runs in the container.
assert_stays_stopped() {
  local container=$1 restart_count=$2

  sleep "$QUIET_PERIOD"
  assert_eq STOPPED "$(agent_status_field "$container" LastStatus)" "LastStatus of $container ${QUIET_PERIOD} s after it stopped"
  assert_eq 0 "$(agent_status_field "$container" Pid)" "Pid of $container ${QUIET_PERIOD} s after it stopped"
  assert_eq "$restart_count" "$(agent_status_field "$container" RestartCount)" "RestartCount of $container ${QUIET_PERIOD} s after it stopped"
  assert_eq 0 "$(count_agents "$container")" "number of agents running in $container after it stopped"
}

# --- invalid durations are rejected before anything starts ---------------------

for value in 5x 5 1.5s -1s ''; do
  status=0
  output=$(timeout 10 "$EXECVISOR_BIN" run --docker-socket "$TEST_DOCKER_SOCKET" \
    --bundle "$TEST_TMP/no-bundle" --state-dir "$TEST_TMP/no-state" --log-dir "$TEST_TMP/no-log" \
    --restart-backoff-min "$value" </dev/null 2>&1) || status=$?
  assert_eq 2 "$status" "exit status of 'execvisor run --restart-backoff-min \"$value\"' (output: $output)"
  assert_contains "$output" "--restart-backoff-min" "message for --restart-backoff-min \"$value\""
  assert_contains "$output" "\"$value\"" "message for --restart-backoff-min \"$value\""
done
[[ ! -e $TEST_TMP/no-state ]] || fail "a rejected command line created the state directory $TEST_TMP/no-state"

# --- restarts with backoff, and the stop after too many exits -------------------

start_supervisor --restart-backoff-min 200ms --restart-backoff-max 1s \
  --max-restarts "$MAX_RESTARTS" --restart-window 1m

# An agent killed with SIGKILL comes back within a few seconds with a new pid.
killed=$(run_agent_container restart-killed '')
wait_agent_state "$killed" RUNNING
first_pid=$(agent_status_field "$killed" Pid)
first_started=$(agent_status_field "$killed" LastStartedAt)
assert_eq 0 "$(agent_status_field "$killed" RestartCount)" "RestartCount of a new agent"
assert_agent_process "$killed" "$first_pid"

kill -KILL "$first_pid"
wait_agent_state --timeout 5 "$killed" RUNNING "$first_pid"
second_pid=$(agent_status_field "$killed" Pid)
assert_eq 1 "$(agent_status_field "$killed" RestartCount)" "RestartCount after the agent was killed"
assert_agent_process "$killed" "$second_pid"
if pid_running "$first_pid" && [[ $(process_argv0 "$first_pid") == */amazon-ssm-agent ]]; then
  fail "the killed agent (pid $first_pid) still runs"
fi
[[ $(agent_status_field "$killed" LastStartedAt) != "$first_started" ]] ||
  fail "LastStartedAt did not change after the restart: $first_started"
assert_eq 1 "$(count_agents "$killed")" "number of agents in container restart-killed"
assert_file_contains "$SUPERVISOR_LOG" 'name="restart-killed": agent killed by signal 9 (SIGKILL)' "supervisor log"

# An agent that exits with status 0 counts as an exit too: it is restarted,
# and stopped in the end like any agent that keeps exiting.
clean=$(run_agent_container restart-exit-0 $'exit-after=300ms\nexit-code=0')
wait_for --timeout 10 restart_count_at_least "$clean" 1
assert_file_contains "$SUPERVISOR_LOG" 'name="restart-exit-0": agent exited with status 0' "supervisor log"
wait_agent_state --timeout 20 "$clean" STOPPED
assert_contains "$(agent_status_field "$clean" Reason)" "exited with status 0" "Reason of an agent that kept exiting with status 0"
assert_eq "$MAX_RESTARTS" "$(agent_status_field "$clean" RestartCount)" "RestartCount of an agent that kept exiting with status 0"

# A crash loop: after the first run and MAX_RESTARTS restarts, that is
# MAX_RESTARTS + 1 exits within the window, the agent is stopped for good.
looping=$(run_agent_container restart-loop $'exit-after=100ms\nexit-code=3\nmessage=boom')
wait_agent_state --timeout 20 "$looping" STOPPED
reason=$(agent_status_field "$looping" Reason)
note "reason of the crash-looping agent: $reason"
assert_contains "$reason" "exited $((MAX_RESTARTS + 1)) times" "Reason of the crash-looping agent"
assert_contains "$reason" "status 3" "Reason of the crash-looping agent"
assert_contains "$reason" "boom" "Reason of the crash-looping agent"
assert_eq "$MAX_RESTARTS" "$(agent_status_field "$looping" RestartCount)" "RestartCount of the crash-looping agent"
assert_eq 0 "$(agent_status_field "$looping" Pid)" "Pid of the stopped crash-looping agent"
starts=$(grep -cE 'name="restart-loop": agent (injected and started|started again)' "$SUPERVISOR_LOG" || true)
assert_eq $((MAX_RESTARTS + 1)) "$starts" "number of starts of the crash-looping agent in the supervisor log"
assert_stays_stopped "$looping" "$MAX_RESTARTS"
assert_eq "$((MAX_RESTARTS + 1))" \
  "$(grep -cE 'name="restart-loop": agent (injected and started|started again)' "$SUPERVISOR_LOG" || true)" \
  "number of starts of the crash-looping agent after it was stopped"

# The agent that was killed once still runs: other containers' exits do not
# count against it.
assert_eq RUNNING "$(agent_status_field "$killed" LastStatus)" "LastStatus of restart-killed at the end"
assert_eq "$second_pid" "$(agent_status_field "$killed" Pid)" "Pid of restart-killed at the end"

stop_supervisor
docker rm --force "$killed" "$clean" "$looping" >/dev/null

# --- an agent that cannot start is stopped at once and not retried ---------------

# A text file in place of the agent binary passes the bundle's checks (it is
# an executable regular file) and fails at the exec with ENOEXEC.
TEST_BUNDLE=$TEST_TMP/bundle-text
TEST_STATE_DIR=$TEST_TMP/state-text
make_bundle "$TEST_BUNDLE"
printf 'this is a text file, not a program\n' >"$TEST_BUNDLE/bin/3.2.0.0/amazon-ssm-agent"
chmod 0755 "$TEST_BUNDLE/bin/3.2.0.0/amazon-ssm-agent"
mark=$(supervisor_log_mark)
start_supervisor --restart-backoff-min 200ms --restart-backoff-max 1s --max-restarts "$MAX_RESTARTS"

text=$(run_agent_container restart-text-agent '')
wait_agent_state --timeout 5 "$text" STOPPED
reason=$(agent_status_field "$text" Reason)
note "reason of the agent that is a text file: $reason"
assert_contains "$reason" "exec" "Reason of an agent that cannot be executed"
assert_contains "$reason" "Exec format error" "Reason of an agent that cannot be executed"
assert_eq 0 "$(agent_status_field "$text" RestartCount)" "RestartCount of an agent that cannot be executed"
assert_stays_stopped "$text" 0
log=$(supervisor_log_since "$mark")
assert_eq 1 "$(count_matching_lines "$log" 'name="restart-text-agent": agent not started')" \
  "number of failed starts of the text-file agent in the supervisor log"
assert_eq 0 "$(count_matching_lines "$log" 'name="restart-text-agent": agent started again')" \
  "number of restarts of the text-file agent in the supervisor log"
stop_supervisor
docker rm --force "$text" >/dev/null

# A binary without execute permission fails the bundle's checks: the reason
# names the file, and there is no retry either.
TEST_BUNDLE=$TEST_TMP/bundle-mode
TEST_STATE_DIR=$TEST_TMP/state-mode
make_bundle "$TEST_BUNDLE"
chmod 0644 "$TEST_BUNDLE/bin/3.2.0.0/amazon-ssm-agent"
mark=$(supervisor_log_mark)
start_supervisor --restart-backoff-min 200ms --restart-backoff-max 1s --max-restarts "$MAX_RESTARTS"

mode=$(run_agent_container restart-mode-agent '')
wait_agent_state --timeout 5 "$mode" STOPPED
reason=$(agent_status_field "$mode" Reason)
note "reason of the agent without execute permission: $reason"
assert_contains "$reason" "amazon-ssm-agent not executable" "Reason of an agent without execute permission"
assert_eq 0 "$(agent_status_field "$mode" RestartCount)" "RestartCount of an agent without execute permission"
assert_stays_stopped "$mode" 0
log=$(supervisor_log_since "$mark")
assert_eq 1 "$(count_matching_lines "$log" 'name="restart-mode-agent": agent not started')" \
  "number of failed starts of the agent without execute permission in the supervisor log"
stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
