#!/usr/bin/env bash
# Pushed reports. Every state change of an agent reaches each --report-url, on
# loopback TCP and on a unix socket, in order, with the Sequence rising by one
# per container. TaskARN is present only for a container with the ECS task
# label. A receiver that was down gets the newest state of every container once
# it is back, and never an older state after a newer one. A slow receiver does
# not delay an injection. A restarted supervisor goes on with the next Sequence.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly AGENT_VERSION=3.2.0.0
readonly TASK_ARN=arn:aws:ecs:us-east-1:123456789012:task/execvisor-test-cluster/9f8e7d6c5b4a49382716a5b4c3d2e1f0
readonly URL_PATH=/reports
readonly SLOW_URL_PATH=/slow
# Each request to the slow receiver takes this many seconds.
readonly SLOW_DELAY=5
readonly SLOW_LOAD_CONTAINERS=4
# How long after `docker run` returns the injection may be logged while every
# send to the slow receiver is still in flight.
readonly INJECTION_MAX_MS=2000
# The flaky receiver fails this many requests with 503 before it accepts reports.
readonly FLAKY_FAILURES=3
# The agent of ep-flap exits once with this code.
readonly FLAP_EXIT_CODE=3

test_started_ms=$(_now_ms)
# The last Sequence and agent pid of each container before the supervisor restarts.
declare -A last_sequence last_pid

# field_list RECORDS ID JQ_EXPRESSION: print the value of JQ_EXPRESSION for each
# report of container ID in RECORDS, in the order of arrival, on one line.
field_list() {
  received_reports "$1" "$2" | jq -r "$3 | tostring" | paste -sd ' '
}

# repeat_word WORD N: print WORD N times on one line.
repeat_word() {
  local words=() i

  for ((i = 0; i < $2; i++)); do
    words+=("$1")
  done
  printf '%s\n' "${words[*]}"
}

# Print "1 2 ... N".
one_to() {
  seq 1 "$1" | paste -sd ' '
}

agent_reason_contains() {
  [[ $(agent_status_field "$1" Reason) == *"$2"* ]]
}

agent_restart_count_is() {
  [[ $(agent_status_field "$1" RestartCount) == "$2" ]] && agent_in_state "$1" RUNNING
}

# latest_report_matches RECORDS ID: the last report of container ID in
# RECORDS gives the state that execvisor status gives now.
latest_report_matches() {
  local records=$1 id=$2 agents

  agents=$(checked_status_json) || return 1
  [[ $(jq -S -c --arg id "$id" '.[] | select(.ContainerId == $id)' <<<"$agents") == "$(report_as_agent_record "$records" "$id")" ]]
}

# report_queue_is LENGTH: the supervisor's execvisor_report_queue metric is LENGTH.
report_queue_is() {
  [[ $(report_queue_length) == "$1" ]]
}

report_queue_length() {
  endpoint_request GET /metrics >/dev/null
  metric_value "$HTTP_BODY" execvisor_report_queue
}

# check_report_times RECORDS ID: every Time of container ID is RFC 3339 in
# UTC, within this test's run, and none is earlier than the one before it.
check_report_times() {
  local records=$1 id=$2 time previous=0 ms now

  now=$(_now_ms)
  while read -r time; do
    assert_rfc3339_utc "$time" "Time of a report of ${id:0:12}"
    ms=$(time_ms "$time")
    ((ms >= test_started_ms - 1000 && ms <= now + 1000)) ||
      fail "Time $time of a report of ${id:0:12} is outside the test's run"
    ((ms >= previous)) || fail "the reports of ${id:0:12} go back in time: $(field_list "$records" "$id" .Time)"
    previous=$ms
  done < <(received_reports "$records" "$id" | jq -r .Time)
}

# check_sequences_rise RECORDS: in RECORDS, the Sequence of each container is
# higher than that of its report before.
check_sequences_rise() {
  local records=$1 id sequences

  for id in $(jq -r .ContainerId "$records" | sort -u); do
    sequences=$(field_list "$records" "$id" .Sequence)
    assert_eq "$(tr ' ' '\n' <<<"$sequences" | sort -n -u | paste -sd ' ')" "$sequences" \
      "Sequences of ${id:0:12} in the order they arrived in $records (no older state after a newer one)"
  done
}

# Print the report of container ID in the records as a normalised agent
# record, in the form of GET /v1/agents, so that the two can be compared.
report_as_agent_record() {
  received_reports "$1" "$2" | tail -n 1 | jq -S -c '{
      ContainerId, ContainerName,
      LastStatus: .ManagedAgent.LastStatus,
      Reason: (.ManagedAgent.Reason // ""),
      LastStartedAt: (.ManagedAgent.LastStartedAt // null),
      RestartCount: .ManagedAgent.RestartCount,
      Pid: .ManagedAgent.Pid,
      Version: (.ManagedAgent.Version // "")
    }'
}

# --- in order, with no gaps, on TCP and on a unix socket -------------------------

start_receiver healthy --port 0 --expect-path "$URL_PATH"
healthy_pid=$RECEIVER_PID
healthy_port=$RECEIVER_PORT
healthy=$RECEIVER_RECORDS
unix_socket=$TEST_TMP/receiver.sock
start_receiver unix --unix "$unix_socket" --expect-path "$URL_PATH"
unix_records=$RECEIVER_RECORDS
start_receiver flaky --port 0 --expect-path "$URL_PATH" --fail-first "$FLAKY_FAILURES"
flaky_port=$RECEIVER_PORT
flaky=$RECEIVER_RECORDS

# A restart delay of 2 s leaves time to change the agent's control file
# between its exit and its restart.
start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --restart-backoff-min 2s --restart-backoff-max 2s \
  --report-url "http://127.0.0.1:$healthy_port$URL_PATH" \
  --report-url "unix:$unix_socket:$URL_PATH" \
  --report-url "http://127.0.0.1:$flaky_port$URL_PATH"

flap=$(run_agent_container ep-flap "exit-after=500ms
exit-code=$FLAP_EXIT_CODE" --label "com.amazonaws.ecs.task-arn=$TASK_ARN")
plain=$(run_agent_container ep-plain '')
gone=$(run_agent_container ep-gone '')

# The agent of ep-flap exits once: without the control file its next start runs on.
wait_for --timeout 15 agent_reason_contains "$flap" "exited with status $FLAP_EXIT_CODE"
docker exec ep-flap rm "$TEST_AGENT_CONTROL_FILE"
wait_for --timeout 15 agent_restart_count_is "$flap" 1
flap_pid=$(agent_status_field "$flap" Pid)
docker kill ep-flap >/dev/null
wait_agent_state "$flap" STOPPED
wait_agent_state "$plain" RUNNING
wait_agent_state "$gone" RUNNING

for records in "$healthy" "$unix_records"; do
  wait_for --timeout 15 has_report "$records" "$flap" '.Event == "stopped"'
  wait_for --timeout 15 has_report "$records" "$plain"
  wait_for --timeout 15 has_report "$records" "$gone"
done

# Exactly these four events: the agent's exit when its container is killed
# is part of the container's exit and is not reported on its own.
expect_eq "injected exited started stopped" "$(field_list "$healthy" "$flap" .Event)" "Events of ep-flap"
count=$(received_count "$healthy" "$flap")
assert_eq "$(one_to "$count")" "$(field_list "$healthy" "$flap" .Sequence)" "Sequences of ep-flap"
assert_eq "$(repeat_word "$flap" "$count")" "$(field_list "$healthy" "$flap" .ContainerId)" \
  "ContainerId of the reports of ep-flap"
assert_eq "$(repeat_word ep-flap "$count")" "$(field_list "$healthy" "$flap" .ContainerName)" \
  "ContainerName of the reports of ep-flap"
assert_eq "$(repeat_word "$TASK_ARN" "$count")" "$(field_list "$healthy" "$flap" .TaskARN)" \
  "TaskARN of the reports of ep-flap"
assert_eq "$(repeat_word ExecuteCommandAgent "$count")" "$(field_list "$healthy" "$flap" .ManagedAgent.Name)" \
  "ManagedAgent.Name of the reports of ep-flap"
assert_eq "$(repeat_word "$AGENT_VERSION" "$count")" "$(field_list "$healthy" "$flap" .ManagedAgent.Version)" \
  "ManagedAgent.Version of the reports of ep-flap"

# by_event EVENT JQ_EXPRESSION: the values for the reports of ep-flap with EVENT.
by_event() {
  received_reports "$healthy" "$flap" | jq -r --arg event "$1" "select(.Event == \$event) | $2 | tostring" | paste -sd ' '
}

assert_eq RUNNING "$(by_event injected .ManagedAgent.LastStatus)" "ManagedAgent.LastStatus of the injected report of ep-flap"
assert_eq RUNNING "$(by_event started .ManagedAgent.LastStatus)" "ManagedAgent.LastStatus of the started report of ep-flap"
assert_eq STOPPED "$(by_event stopped .ManagedAgent.LastStatus)" "ManagedAgent.LastStatus of the stopped report of ep-flap"
first_exit=$(received_reports "$healthy" "$flap" | jq -c 'select(.Event == "exited")' | head -n 1)
[[ -n $first_exit ]] || fail "ep-flap has no exited report"
assert_eq PENDING "$(jq -r .ManagedAgent.LastStatus <<<"$first_exit")" "ManagedAgent.LastStatus of the exited report of ep-flap"
assert_eq 2 "$(jq -r .Sequence <<<"$first_exit")" "Sequence of the exited report of ep-flap"
assert_eq 0 "$(by_event injected .ManagedAgent.RestartCount)" "ManagedAgent.RestartCount of the injected report of ep-flap"
assert_eq 0 "$(jq -r .ManagedAgent.RestartCount <<<"$first_exit")" "ManagedAgent.RestartCount of the exited report of ep-flap"
assert_eq 1 "$(by_event started .ManagedAgent.RestartCount)" "ManagedAgent.RestartCount of the started report of ep-flap"
assert_eq 1 "$(by_event stopped .ManagedAgent.RestartCount)" "ManagedAgent.RestartCount of the stopped report of ep-flap"

# The pid while the agent runs, 0 while none does.
injected_pid=$(by_event injected .ManagedAgent.Pid)
[[ $injected_pid =~ ^[1-9][0-9]*$ ]] || fail "ManagedAgent.Pid of the injected report of ep-flap is '$injected_pid'"
[[ $injected_pid != "$flap_pid" ]] || fail "the restarted agent of ep-flap has the pid of the first one, $flap_pid"
assert_eq "$flap_pid" "$(by_event started .ManagedAgent.Pid)" "ManagedAgent.Pid of the started report of ep-flap"
assert_eq 0 "$(jq -r .ManagedAgent.Pid <<<"$first_exit")" "ManagedAgent.Pid of the exited report of ep-flap"
assert_eq 0 "$(by_event stopped .ManagedAgent.Pid)" "ManagedAgent.Pid of the stopped report of ep-flap"

# The Reason gives the cause while no agent runs, and is absent while one runs.
assert_contains "$(jq -r .ManagedAgent.Reason <<<"$first_exit")" "exited with status $FLAP_EXIT_CODE" \
  "ManagedAgent.Reason of the exited report of ep-flap"
[[ -n $(by_event stopped '.ManagedAgent.Reason // ""') ]] || fail "the stopped report of ep-flap has no ManagedAgent.Reason"
assert_eq "false false" "$(received_reports "$healthy" "$flap" | jq -r 'select(.ManagedAgent.LastStatus == "RUNNING") | .ManagedAgent | has("Reason")' | paste -sd ' ')" \
  "whether the RUNNING reports of ep-flap have a ManagedAgent.Reason"
assert_eq "$(agent_status_field "$flap" LastStartedAt)" "$(by_event stopped .ManagedAgent.LastStartedAt)" \
  "ManagedAgent.LastStartedAt of the stopped report of ep-flap against execvisor status"
check_report_times "$healthy" "$flap"

for id in "$plain" "$gone"; do
  assert_eq injected "$(field_list "$healthy" "$id" .Event)" "Events of ${id:0:12}"
  assert_eq 1 "$(field_list "$healthy" "$id" .Sequence)" "Sequence of ${id:0:12}"
  assert_eq RUNNING "$(field_list "$healthy" "$id" .ManagedAgent.LastStatus)" "ManagedAgent.LastStatus of ${id:0:12}"
  assert_eq "$(agent_status_field "$id" Pid)" "$(field_list "$healthy" "$id" .ManagedAgent.Pid)" "ManagedAgent.Pid of ${id:0:12}"
  # No TaskARN key at all, not an empty one.
  assert_eq false "$(received_reports "$healthy" "$id" | jq 'has("TaskARN")')" "whether the report of ${id:0:12}, which has no task label, has a TaskARN"
  check_report_times "$healthy" "$id"
done
assert_eq "ep-plain" "$(field_list "$healthy" "$plain" .ContainerName)" "ContainerName of ep-plain"

# The receiver on the unix socket got the very same reports.
assert_eq "$(sort "$healthy")" "$(sort "$unix_records")" "reports received on the unix socket against those on TCP"

# --- a receiver that is down gets the newest state of each container ----------------

stop_receiver "$healthy_pid"
note "the receiver on port $healthy_port is down"

plain_pid=$(agent_status_field "$plain" Pid)
kill -KILL "$plain_pid"
docker kill ep-gone >/dev/null
late=$(run_agent_container ep-late '')
wait_agent_state "$gone" STOPPED
wait_agent_state "$late" RUNNING
wait_agent_state --timeout 15 "$plain" RUNNING "$plain_pid"
# The receiver on the unix socket stays up and is soon up to date.
for id in "$plain" "$gone" "$late"; do
  wait_for --timeout 10 latest_report_matches "$unix_records" "$id"
done

# One state waits per container, however many changes it had: ep-plain had two.
wait_for --timeout 10 report_queue_is 3

start_receiver healthy-again --port "$healthy_port" --expect-path "$URL_PATH"
healthy_again=$RECEIVER_RECORDS
# The retry after 1, 2, 4, then 8 s (each minus up to half of it) comes at most
# 15 s after the first failure.
for id in "$plain" "$gone" "$late"; do
  wait_for --timeout 30 has_report "$healthy_again" "$id"
done
wait_for --timeout 10 report_queue_is 0
sleep 1

agents=$(endpoint_get_json /v1/agents)
for id in "$plain" "$gone" "$late"; do
  assert_eq 1 "$(received_count "$healthy_again" "$id")" \
    "number of reports of ${id:0:12} after the receiver came back (only the newest state waits): $(received_reports "$healthy_again" "$id")"
  assert_eq "$(received_reports "$unix_records" "$id" | tail -n 1)" "$(received_reports "$healthy_again" "$id")" \
    "report of ${id:0:12} after the receiver came back against the newest one on the unix socket"
  assert_eq "$(jq -S -c --arg id "$id" '.[] | select(.ContainerId == $id)' <<<"$agents")" \
    "$(report_as_agent_record "$healthy_again" "$id")" \
    "report of ${id:0:12} after the receiver came back against GET /v1/agents"
done
assert_eq started "$(field_list "$healthy_again" "$plain" .Event)" "Event of ep-plain after the receiver came back"
assert_eq stopped "$(field_list "$healthy_again" "$gone" .Event)" "Event of ep-gone after the receiver came back"
assert_eq injected "$(field_list "$healthy_again" "$late" .Event)" "Event of ep-late after the receiver came back"

# Over both runs of the receiver on TCP, and on the unix socket,
# no container's state goes back.
cat "$healthy" "$healthy_again" >"$TEST_TMP/tcp-all.jsonl"
check_sequences_rise "$TEST_TMP/tcp-all.jsonl"
check_sequences_rise "$unix_records"
# The unix receiver was never down: it has every Sequence of every container.
for id in "$flap" "$plain" "$gone" "$late"; do
  count=$(received_count "$unix_records" "$id")
  assert_eq "$(one_to "$count")" "$(field_list "$unix_records" "$id" .Sequence)" "Sequences of ${id:0:12} on the unix socket"
done

endpoint_request GET /metrics
failed_sends=$(metric_value "$HTTP_BODY" 'execvisor_reports_total{result="failed"}')
if [[ ! $failed_sends =~ ^[0-9]+$ ]] || ((failed_sends < 1)); then
  fail "execvisor_reports_total{result=\"failed\"} is '$failed_sends' after a receiver was down"
fi

# --- a receiver that fails is retried with backoff ----------------------------------

# Once it accepts reports, the flaky receiver soon has the newest state of
# each container, and never an older state after a newer one.
for id in "$flap" "$plain" "$gone" "$late"; do
  wait_for --timeout 20 latest_report_matches "$flaky" "$id"
done
check_sequences_rise "$flaky"
assert_file_contains "$SUPERVISOR_LOG" "reports to http://127.0.0.1:$flaky_port$URL_PATH delivered again after $FLAKY_FAILURES failed sends"

# One request at a time while it fails, each after a delay that doubles from
# 1 s; up to half of each delay is random, so the gaps are 0.5-1 s, 1-2 s and 2-4 s.
mapfile -t flaky_requests < <(head -n $((FLAKY_FAILURES + 1)) "$TEST_TMP/flaky.access")
assert_eq "503 503 503 200" "$(printf '%s\n' "${flaky_requests[@]}" | awk '{ print $5 }' | paste -sd ' ')" \
  "statuses of the first requests to the flaky receiver: ${flaky_requests[*]}"
minimum_ms=500
for ((i = 1; i <= FLAKY_FAILURES; i++)); do
  gap_ms=$(awk -v a="${flaky_requests[i - 1]%% *}" -v b="${flaky_requests[i]%% *}" 'BEGIN { printf "%d", (b - a) * 1000 }')
  # 50 ms of slack below for timer and scheduling, 300 ms above.
  if ((gap_ms < minimum_ms - 50 || gap_ms > minimum_ms * 2 + 300)); then
    fail "request $((i + 1)) to the flaky receiver came $gap_ms ms after request $i; expected $minimum_ms to $((minimum_ms * 2)) ms (requests: ${flaky_requests[*]})"
  fi
  minimum_ms=$((minimum_ms * 2))
done

# --- the Sequence goes on across a restart of the supervisor ------------------------

# Without --stop-agents-on-exit the agents keep running, and the next
# supervisor adopts them with the next Sequence of each container.
for id in "$plain" "$late"; do
  last_sequence[$id]=$(received_reports "$unix_records" "$id" | tail -n 1 | jq -r .Sequence)
  last_pid[$id]=$(agent_status_field "$id" Pid)
done
stop_supervisor
start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --restart-backoff-min 2s --restart-backoff-max 2s \
  --report-url "http://127.0.0.1:$healthy_port$URL_PATH" \
  --report-url "unix:$unix_socket:$URL_PATH" \
  --report-url "http://127.0.0.1:$flaky_port$URL_PATH"
for id in "$plain" "$late"; do
  for records in "$unix_records" "$healthy_again"; do
    wait_for --timeout 15 has_report "$records" "$id" '.Event == "adopted"'
    adopted=$(received_reports "$records" "$id" | jq -c 'select(.Event == "adopted")')
    assert_eq $((last_sequence[$id] + 1)) "$(jq -r .Sequence <<<"$adopted")" "Sequence of the adopted report of ${id:0:12} in $records"
    assert_eq RUNNING "$(jq -r .ManagedAgent.LastStatus <<<"$adopted")" "ManagedAgent.LastStatus of the adopted report of ${id:0:12}"
    assert_eq "${last_pid[$id]}" "$(jq -r .ManagedAgent.Pid <<<"$adopted")" "ManagedAgent.Pid of the adopted report of ${id:0:12}"
  done
done
check_sequences_rise "$unix_records"
cat "$healthy" "$healthy_again" >"$TEST_TMP/tcp-all.jsonl"
check_sequences_rise "$TEST_TMP/tcp-all.jsonl"

stop_supervisor
_remove_test_containers
rm -rf "$TEST_STATE_DIR"

# --- a slow receiver does not delay injections ------------------------------------------

start_receiver slow --port 0 --delay "$SLOW_DELAY" --expect-path "$SLOW_URL_PATH"
slow=$RECEIVER_RECORDS
start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --report-url "http://127.0.0.1:$RECEIVER_PORT$SLOW_URL_PATH"

for ((i = 0; i < SLOW_LOAD_CONTAINERS; i++)); do
  id=$(run_agent_container "ep-slow-load-$i" '')
  wait_agent_state "$id" RUNNING
done
queued=$(report_queue_length)
((queued >= 1)) || fail "no report waits for the slow receiver before the timed container starts (execvisor_report_queue is '$queued')"

run_started_ms=$(_now_ms)
timed=$(run_agent_container ep-timed '')
run_done_ms=$(_now_ms)
injection_line="container ${timed:0:12} name=\"ep-timed\": agent injected and started"
wait_for --timeout 10 grep -qF -- "$injection_line" "$SUPERVISOR_LOG"
logged_ms=$(time_ms "$(grep -F -- "$injection_line" "$SUPERVISOR_LOG" | head -n 1 | cut -d' ' -f1)")
note "with $queued reports in flight to the slow receiver: docker run took $((run_done_ms - run_started_ms)) ms, the injection was logged $((logged_ms - run_done_ms)) ms after it returned"
((logged_ms - run_done_ms <= INJECTION_MAX_MS)) ||
  fail "the injection into ep-timed was logged $((logged_ms - run_done_ms)) ms after docker run returned, while $queued reports were in flight to the slow receiver; expected at most $INJECTION_MAX_MS ms"

# The endpoint answers at once too.
status_started_ms=$(_now_ms)
status_json >/dev/null
status_ms=$(($(_now_ms) - status_started_ms))
((status_ms <= 1000)) || fail "execvisor status took $status_ms ms while reports were in flight to the slow receiver"

# The slow receiver still gets every report, late.
wait_for --timeout 30 has_report "$slow" "$timed" '.Event == "injected"'

finish_deferred_checks
