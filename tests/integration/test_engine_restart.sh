#!/usr/bin/env bash
# The supervisor outlives a restart of the Docker engine: while the engine is
# down it keeps running and responds to status queries, and once the engine is
# back it resynchronises. Without --live-restore the engine stops its
# containers, whose agents are then STOPPED "container exited", and containers
# started afterwards get their agent. With --live-restore the containers and
# their agents run on, and the supervisor neither restarts nor duplicates them.
#
# The test restarts the private engine with dockerd.sh, so it is skipped on an
# engine given with EXECVISOR_TEST_DOCKER_SOCKET. It leaves the engine running
# with the arguments of `dockerd.sh start` again, unless it fails half-way.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly DOCKERD_SH=$EXECVISOR_SOURCE_DIR/tests/integration/dockerd.sh
readonly ENGINE_DOWN_SECONDS=3

if [[ -n ${EXECVISOR_TEST_DOCKER_SOCKET-} ]]; then
  skip "the engine at EXECVISOR_TEST_DOCKER_SOCKET is not this test's to restart"
fi

# restart_engine [--down SECONDS] [DOCKERD_OPTION...]: restart the engine and
# wait until it responds again.
restart_engine() {
  local status=0

  bash "$DOCKERD_SH" restart "$EXECVISOR_TEST_DOCKER_DIR" "$@" || status=$?
  ((status != EXIT_SKIP)) || skip "dockerd.sh cannot restart this engine"
  ((status == 0)) || fail "dockerd.sh restart $* failed with status $status"
}

# restart_engine_in_background [DOCKERD_OPTION...]: start a restart that
# leaves the engine down for ENGINE_DOWN_SECONDS, and return once the engine
# is down. The restart runs outside this shell's jobs, so that it brings the
# engine back even if the test fails meanwhile. engine_restart_done returns
# whether it has finished.
restart_engine_in_background() {
  RESTART_LOG=$TEST_TMP/dockerd-restart.$((++restart_number)).log
  RESTART_DONE=$RESTART_LOG.status
  (
    setsid bash -c 'bash "$@" >"$0" 2>&1; echo $? >"$0.status"' \
      "$RESTART_LOG" "$DOCKERD_SH" restart "$EXECVISOR_TEST_DOCKER_DIR" --down "$ENGINE_DOWN_SECONDS" "$@" \
      </dev/null &
  )
  wait_for --timeout 60 _engine_is_down
}

restart_number=0

_engine_is_down() {
  [[ ! -f $RESTART_DONE ]] || fail "the engine restart ended before the engine was seen down: $(cat "$RESTART_LOG")"
  grep -q 'leaving the engine down' "$RESTART_LOG" 2>/dev/null
}

engine_restart_done() {
  [[ -f $RESTART_DONE ]]
}

wait_engine_restarted() {
  wait_for --timeout 90 engine_restart_done
  [[ $(cat "$RESTART_DONE") == 0 ]] || fail "the engine restart failed: $(cat "$RESTART_LOG")"
  note "engine restarted: $(tail -n 1 "$RESTART_LOG")"
}

# The supervisor has read the container list again after MARK in its log.
synchronized_since() {
  supervisor_log_since "$1" | grep -qF 'synchronized with Docker engine'
}

assert_supervisor_alive() {
  pid_running "$SUPERVISOR_PID" || fail "$1: the supervisor (pid $SUPERVISOR_PID) no longer runs"
  checked_status_json >/dev/null || fail "$1: the supervisor does not answer status queries"
}

start_supervisor_synced --restart-backoff-min 200ms --restart-backoff-max 1s

# --- an engine without --live-restore stops its containers ----------------------

# dockerd stops each container on its way down, with SIGKILL after the stop
# timeout, which a `sleep` as PID 1 waits out because it ignores SIGTERM.
old=$(run_agent_container engine-old '' --stop-timeout 1)
wait_agent_state "$old" RUNNING
old_agent=$(agent_status_field "$old" Pid)

mark=$(supervisor_log_mark)
restart_engine_in_background
assert_supervisor_alive "while the engine is down"
wait_agent_state --timeout 10 "$old" STOPPED
assert_eq "container exited" "$(agent_status_field "$old" Reason)" "Reason of a container that the engine stopped on its way down"
pid_running "$old_agent" && fail "the agent (pid $old_agent) runs on after the engine stopped its container"
assert_supervisor_alive "while the engine is down"

wait_engine_restarted
wait_for --timeout 30 synchronized_since "$mark"
assert_supervisor_alive "after the engine restart"
assert_contains "$(supervisor_log_since "$mark")" "the agents keep running while the Docker engine is unreachable" "supervisor log while the engine was down"

# A container started after the engine is back gets its agent.
new=$(run_agent_container engine-new '')
wait_agent_state "$new" RUNNING
assert_eq 1 "$(count_agents "$new")" "number of agents in a container started after the engine restart"

# The stopped container is still reported as stopped, and gets an agent again
# when it starts.
assert_eq STOPPED "$(agent_status_field "$old" LastStatus)" "LastStatus of the container that the engine stopped, after the restart"
assert_eq "container exited" "$(agent_status_field "$old" Reason)" "Reason of the container that the engine stopped, after the restart"
expect_eq 0 "$(agent_status_field "$old" RestartCount)" "RestartCount of an agent that went down with its container"
docker start "$old" >/dev/null
wait_agent_state --timeout 10 "$old" RUNNING "$old_agent"
assert_eq 1 "$(count_agents "$old")" "number of agents in engine-old after docker start"

_remove_test_containers

# --- an engine with --live-restore keeps its containers ---------------------------

mark=$(supervisor_log_mark)
restart_engine --live-restore
wait_for --timeout 30 synchronized_since "$mark"

live=$(run_agent_container engine-live '')
wait_agent_state "$live" RUNNING
live_agent=$(agent_status_field "$live" Pid)
live_agent_start=$(process_start_time "$live_agent")
live_init=$(container_pid "$live")

mark=$(supervisor_log_mark)
restart_engine_in_background --live-restore
assert_supervisor_alive "while the engine with --live-restore is down"
sleep 1
assert_eq RUNNING "$(agent_status_field "$live" LastStatus)" "LastStatus of engine-live while the engine is down"
assert_eq "$live_agent" "$(agent_status_field "$live" Pid)" "Pid of engine-live while the engine is down"
pid_running "$live_agent" || fail "the agent of engine-live (pid $live_agent) stopped while the engine was down"

wait_engine_restarted
wait_for --timeout 30 synchronized_since "$mark"
# Give a wrong restart or second injection time to happen.
sleep 2
assert_eq "$live_init" "$(container_pid "$live")" "init pid of engine-live after the engine restart (live restore)"
assert_eq RUNNING "$(agent_status_field "$live" LastStatus)" "LastStatus of engine-live after the engine restart"
assert_eq "$live_agent" "$(agent_status_field "$live" Pid)" "Pid of engine-live after the engine restart"
assert_eq "$live_agent_start" "$(process_start_time "$live_agent")" "start time of engine-live's agent after the engine restart"
assert_eq 0 "$(agent_status_field "$live" RestartCount)" "RestartCount of engine-live after the engine restart"
assert_eq 1 "$(count_agents "$live")" "number of agents in engine-live after the engine restart"
log=$(supervisor_log_since "$mark")
assert_eq 0 "$(count_matching_lines "$log" 'name="engine-live": agent ')" \
  "log lines about engine-live's agent after the engine restart (log: $log)"

live_new=$(run_agent_container engine-live-new '')
wait_agent_state "$live_new" RUNNING
assert_eq 1 "$(count_agents "$live_new")" "number of agents in a container started after the live restore"

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"

# Back to the engine that `dockerd.sh start` runs, for the tests after this one.
_remove_test_containers
restart_engine

finish_deferred_checks
