#!/usr/bin/env bash
# The audit log. It has one JSON line for each injection, exit, restart and
# stop of an agent, with its time, container, version, pid, restart count,
# state, reason and sequence number, in LOG-DIR/audit.log by default. It is
# rotated by size into FILE.1 to FILE.3, with every line still whole JSON and
# no event missing from the generations that are kept.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly AGENT_VERSION=3.2.0.0
readonly CRASH_EXIT_CODE=4
readonly CRASH_MESSAGE="audit test agent gives up"
# ep-crashy is stopped for good at its third exit.
readonly CRASH_MAX_RESTARTS=2
readonly AUDIT_KEYS="ContainerId ContainerName Event LastStatus Pid Reason RestartCount Sequence Time Version"
# Rotation: two agents that exit ROTATION_RESTARTS + 1 times each write far
# more than the three kept generations of ROTATION_MAX_SIZE can contain.
readonly ROTATION_MAX_SIZE=2K
readonly ROTATION_MAX_BYTES=2048
readonly ROTATION_RESTARTS=15
readonly AUDIT_GENERATIONS=3

test_started_ms=$(_now_ms)

# audit_values FILE ID JQ_EXPRESSION: print the value of JQ_EXPRESSION for each
# line of container ID in the audit log FILE, in order, on one line.
audit_values() {
  jq -r --arg id "$2" "select(.ContainerId == \$id) | $3 | tostring" "$1" | paste -sd ' '
}

# repeat_word WORD N: print WORD N times on one line.
repeat_word() {
  local words=() i

  for ((i = 0; i < $2; i++)); do
    words+=("$1")
  done
  printf '%s\n' "${words[*]}"
}

# check_audit_keys FILE: every line of FILE has each key of AUDIT_KEYS and no other.
check_audit_keys() {
  local file=$1 keys

  while read -r keys; do
    assert_eq "$AUDIT_KEYS" "$keys" "keys of a line of $file"
  done < <(jq -r 'keys | join(" ")' "$file")
}

# check_audit_times FILE ID: the times of container ID are RFC 3339 in UTC,
# within this test's run, and never earlier than the line before.
check_audit_times() {
  local file=$1 id=$2 time ms previous=0 now

  now=$(_now_ms)
  while read -r time; do
    assert_rfc3339_utc "$time" "Time of an audit line of ${id:0:12}"
    ms=$(time_ms "$time")
    ((ms >= test_started_ms - 1000 && ms <= now + 1000)) ||
      fail "Time $time of an audit line of ${id:0:12} is outside the test's run"
    ((ms >= previous)) || fail "the audit lines of ${id:0:12} go back in time: $(audit_values "$file" "$id" .Time)"
    previous=$ms
  done < <(jq -r --arg id "$id" 'select(.ContainerId == $id) | .Time' "$file")
}

# check_consecutive FILE ID: the Sequences of container ID in FILE rise by one from line to line.
check_consecutive() {
  local file=$1 id=$2 sequences first count

  sequences=$(audit_values "$file" "$id" .Sequence)
  [[ -n $sequences ]] || fail "$file has no line of ${id:0:12}"
  first=${sequences%% *}
  count=$(wc -w <<<"$sequences")
  assert_eq "$(seq "$first" $((first + count - 1)) | paste -sd ' ')" "$sequences" \
    "Sequences of ${id:0:12} in $file (a gap is a lost line)"
}

agent_stopped_for_good() {
  agent_in_state "$1" STOPPED
}

# --- events, fields and the default path ------------------------------------------

start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --restart-backoff-min 200ms --restart-backoff-max 200ms \
  --max-restarts "$CRASH_MAX_RESTARTS" --restart-window 1m
audit_log=$TEST_LOG_DIR/audit.log

crashy=$(run_agent_container ep-crashy "exit-after=300ms
exit-code=$CRASH_EXIT_CODE
message=$CRASH_MESSAGE")
steady=$(run_agent_container ep-steady '')
wait_agent_state "$steady" RUNNING
steady_pid=$(agent_status_field "$steady" Pid)
wait_for --timeout 20 agent_stopped_for_good "$crashy"
docker kill ep-steady >/dev/null
wait_agent_state "$steady" STOPPED
# The line of the last event is written before the status changes, but give
# a late line the chance to show up before the file is read.
sleep 0.5

assert_json_lines "$audit_log" "the audit log"
check_audit_keys "$audit_log"
mode=$(stat -c %a "$audit_log")
if ((8#$mode & 8#007)); then
  fail "the audit log $audit_log has mode $mode: other users may read or write it"
fi

# ep-crashy: three exits with --max-restarts 2 stop it for good at the third.
assert_eq "injected exited started exited started stopped" "$(audit_values "$audit_log" "$crashy" .Event)" \
  "Events of ep-crashy"
assert_eq "1 2 3 4 5 6" "$(audit_values "$audit_log" "$crashy" .Sequence)" "Sequences of ep-crashy"
assert_eq "RUNNING PENDING RUNNING PENDING RUNNING STOPPED" "$(audit_values "$audit_log" "$crashy" .LastStatus)" \
  "LastStatus of ep-crashy"
assert_eq "0 0 1 1 2 2" "$(audit_values "$audit_log" "$crashy" .RestartCount)" "RestartCount of ep-crashy"
assert_eq "$(repeat_word "$crashy" 6)" "$(audit_values "$audit_log" "$crashy" .ContainerId)" "ContainerId of ep-crashy"
assert_eq "$(repeat_word ep-crashy 6)" "$(audit_values "$audit_log" "$crashy" .ContainerName)" "ContainerName of ep-crashy"
assert_eq "$(repeat_word "$AGENT_VERSION" 6)" "$(audit_values "$audit_log" "$crashy" .Version)" "Version of ep-crashy"
check_audit_times "$audit_log" "$crashy"

read -r -a pids <<<"$(audit_values "$audit_log" "$crashy" .Pid)"
for index in 0 2 4; do
  [[ ${pids[index]} =~ ^[1-9][0-9]*$ ]] || fail "Pid of audit line $((index + 1)) of ep-crashy (a start) is '${pids[index]}'"
done
assert_eq 3 "$(printf '%s\n' "${pids[0]}" "${pids[2]}" "${pids[4]}" | sort -u | wc -l)" \
  "number of different pids of the three starts of ep-crashy (${pids[*]})"
assert_eq "0 0 0" "${pids[1]} ${pids[3]} ${pids[5]}" "Pid of the exited and stopped lines of ep-crashy"

mapfile -t reasons < <(jq -r --arg id "$crashy" 'select(.ContainerId == $id) | .Reason' "$audit_log")
for index in 0 2 4; do
  assert_eq "" "${reasons[index]}" "Reason of audit line $((index + 1)) of ep-crashy, a start"
done
for index in 1 3; do
  assert_contains "${reasons[index]}" "exited with status $CRASH_EXIT_CODE" "Reason of audit line $((index + 1)) of ep-crashy, an exit"
done
assert_contains "${reasons[5]}" "exited 3 times" "Reason of the stopped line of ep-crashy"
assert_contains "${reasons[5]}" "$CRASH_MESSAGE" "Reason of the stopped line of ep-crashy"

# ep-steady: injected, then stopped with its container. The agent's exit when
# the container is killed is part of the container's exit, not an event of its own.
expect_eq "injected stopped" "$(audit_values "$audit_log" "$steady" .Event)" "Events of ep-steady"
steady_lines=$(jq -c --arg id "$steady" 'select(.ContainerId == $id)' "$audit_log")
injected=$(head -n 1 <<<"$steady_lines")
stopped=$(tail -n 1 <<<"$steady_lines")
assert_eq injected "$(jq -r .Event <<<"$injected")" "first Event of ep-steady"
assert_eq 1 "$(jq -r .Sequence <<<"$injected")" "Sequence of the injected line of ep-steady"
assert_eq "$steady_pid" "$(jq -r .Pid <<<"$injected")" "Pid of the injected line of ep-steady against execvisor status"
assert_eq RUNNING "$(jq -r .LastStatus <<<"$injected")" "LastStatus of the injected line of ep-steady"
assert_eq stopped "$(jq -r .Event <<<"$stopped")" "last Event of ep-steady"
assert_eq STOPPED "$(jq -r .LastStatus <<<"$stopped")" "LastStatus of the stopped line of ep-steady"
assert_eq 0 "$(jq -r .Pid <<<"$stopped")" "Pid of the stopped line of ep-steady"
assert_eq 0 "$(jq -r .RestartCount <<<"$stopped")" "RestartCount of the stopped line of ep-steady"
assert_eq "$(agent_status_field "$steady" Reason)" "$(jq -r .Reason <<<"$stopped")" \
  "Reason of the stopped line of ep-steady against execvisor status"
[[ -n $(jq -r .Reason <<<"$stopped") ]] || fail "the stopped line of ep-steady has no Reason"
check_consecutive "$audit_log" "$steady"
check_audit_times "$audit_log" "$steady"

stop_supervisor
_remove_test_containers
rm -rf "$TEST_STATE_DIR"
default_log_size=$(stat -c %s "$audit_log")

# --- rotation by size, at a path of its own -----------------------------------------

custom_log=$TEST_TMP/audit/custom.log
install -d -m 0700 "$TEST_TMP/audit"
start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --audit-log "$custom_log" --audit-max-size "$ROTATION_MAX_SIZE" \
  --restart-backoff-min 100ms --restart-backoff-max 100ms \
  --max-restarts "$ROTATION_RESTARTS" --restart-window 1m

flappers=()
for name in ep-rotate-a ep-rotate-b; do
  flappers+=("$(run_agent_container "$name" "exit-after=100ms
exit-code=1")")
done
for id in "${flappers[@]}"; do
  wait_for --timeout 40 agent_stopped_for_good "$id"
done
sleep 0.5

for generation in "" $(seq 1 "$AUDIT_GENERATIONS"); do
  file=$custom_log${generation:+.$generation}
  [[ -f $file ]] || fail "$file is missing after $(((ROTATION_RESTARTS * 2 + 2) * 2)) events; the directory has: $(ls -l "$TEST_TMP/audit")"
  size=$(stat -c %s "$file")
  ((size <= ROTATION_MAX_BYTES)) || fail "$file has $size bytes, above --audit-max-size $ROTATION_MAX_SIZE"
  assert_json_lines "$file" "audit log generation '${generation:-current}'"
  check_audit_keys "$file"
done
[[ ! -e $custom_log.$((AUDIT_GENERATIONS + 1)) ]] ||
  fail "$custom_log.$((AUDIT_GENERATIONS + 1)) exists, but only $AUDIT_GENERATIONS generations are kept"
assert_eq "$default_log_size" "$(stat -c %s "$audit_log")" "size of $audit_log while --audit-log names another file"

# Oldest first, the generations are one log that lost only its beginning.
all=$TEST_TMP/audit-all.jsonl
for generation in $(seq "$AUDIT_GENERATIONS" -1 1) ""; do
  cat "$custom_log${generation:+.$generation}"
done >"$all"
for id in "${flappers[@]}"; do
  check_consecutive "$all" "$id"
  check_audit_times "$all" "$id"
  # Each exit but the last is followed by a start; the last stops it for good.
  assert_eq stopped "$(audit_values "$all" "$id" .Event | awk '{ print $NF }')" "last Event of ${id:0:12}"
  assert_eq "$((ROTATION_RESTARTS * 2 + 2))" "$(audit_values "$all" "$id" .Sequence | awk '{ print $NF }')" \
    "last Sequence of ${id:0:12}: one injection, $ROTATION_RESTARTS exits and restarts, one stop"
done

finish_deferred_checks
