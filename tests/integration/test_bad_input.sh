#!/usr/bin/env bash
# Bad input is reported, not fatal. A missing or broken bundle leaves the
# supervisor running and the container STOPPED with a reason. A broken newest
# bundle version falls back to an older one. Containers that exit at once do
# not disturb the others, a read-only root file system is reported, and
# malformed state files are skipped. An invalid option value is rejected
# with exit code 2 before anything starts.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EXIT_USAGE=2
readonly HEX_ID_A=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
readonly HEX_ID_B=fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210

PHASE_CONTAINERS=()

# start_phase NAME: give the next supervisor its own bundle, state and log
# directories.
start_phase() {
  TEST_BUNDLE=$TEST_TMP/$1/bundle
  TEST_STATE_DIR=$TEST_TMP/$1/state
  TEST_LOG_DIR=$TEST_TMP/$1/log
  PHASE_CONTAINERS=()
  mkdir -p "$TEST_TMP/$1"
  note "phase $1"
}

end_phase() {
  # shellcheck disable=SC2119 # the default timeout
  stop_supervisor
  assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
  if ((${#PHASE_CONTAINERS[@]} > 0)); then
    docker rm --force "${PHASE_CONTAINERS[@]}" >/dev/null
  fi
}

# phase_container NAME [RUN OPTIONS...] [-- CMD...]: start a container that
# the default rule selects.
phase_container() {
  local name=$1
  shift

  run_container "$name" --label execvisor.enable=true "$@" >/dev/null
  PHASE_CONTAINERS+=("$name")
}

check_supervisor_running() {
  pid_running "$SUPERVISOR_PID" || fail "the supervisor (pid $SUPERVISOR_PID) exited: $1"
}

# check_stopped_with NAME TEXT: the agent of NAME is STOPPED, with no pid and
# a reason that contains TEXT.
check_stopped_with() {
  local name=$1 text=$2

  wait_for agent_has_status "$name" STOPPED
  assert_contains "$(agent_field "$name" Reason)" "$text" "$name: Reason in the status"
  assert_eq 0 "$(agent_field "$name" Pid)" "$name: Pid in the status"
}

# A bundle directory that does not exist: the containers are STOPPED with a
# reason that names it. A bundle installed later serves them and new
# containers, without a restart of the supervisor.
start_phase missing
missing_bundle=$TEST_TMP/missing/not-installed
phase_container missing-before
start_supervisor --bundle "$missing_bundle"
check_stopped_with missing-before "$missing_bundle"
phase_container missing-after
check_stopped_with missing-after "$missing_bundle"
check_supervisor_running "after reporting the missing bundle directory"
assert_file_contains "$SUPERVISOR_LOG" "$missing_bundle" "supervisor log"
make_bundle "$missing_bundle"
wait_for_agent missing-before >/dev/null
wait_for_agent missing-after >/dev/null
assert_file_contains "$SUPERVISOR_LOG" "the agent bundle changed; starting the agent again" "supervisor log"
phase_container missing-installed
wait_for_agent missing-installed >/dev/null
end_phase

# A bundle whose only binary is an amazon-ssm-agent without execute permission.
start_phase not-executable
install -d -m 0755 "$TEST_BUNDLE/bin/3.2.0.0" "$TEST_BUNDLE/certs"
install -m 0644 "$EXECVISOR_TEST_AGENT" "$TEST_BUNDLE/bin/3.2.0.0/amazon-ssm-agent"
printf 'not a certificate\n' >"$TEST_BUNDLE/certs/tls-ca-bundle.pem"
phase_container not-executable
start_supervisor
check_stopped_with not-executable "not executable"
assert_contains "$(agent_field not-executable Reason)" amazon-ssm-agent "not-executable: Reason in the status"
check_supervisor_running "after reporting the bundle without an executable agent"
end_phase

# Containers that exit at once, alone and among long-running ones.
start_phase short-lived
start_supervisor
wait_for grep -qF "synchronized with Docker engine" "$SUPERVISOR_LOG"
for i in 1 2 3 4 5; do
  phase_container "short-lived-true-$i" -- true
  phase_container "short-lived-exit-$i" -- sh -c 'exit 3'
done
phase_container short-lived-survivor
wait_for_agent short-lived-survivor >/dev/null
check_supervisor_running "after containers that exited at once"
phase_container short-lived-after
wait_for_agent short-lived-after >/dev/null
for i in 1 2 3 4 5; do
  for name in "short-lived-true-$i" "short-lived-exit-$i"; do
    status=$(agent_field "$name" LastStatus)
    if [[ -n $status && $status != STOPPED ]]; then
      fail "$name exited at once, but the status shows its agent as $status"
    fi
  done
done
end_phase

# A read-only root file system has no room for the bundle's mount point.
# As with ECS Exec, which needs writable container storage, the agent is
# STOPPED with a reason, and a writable container beside it is served.
start_phase read-only
phase_container read-only --read-only
start_supervisor
check_stopped_with read-only "Read-only file system"
assert_not_contains "$(cat "/proc/$(container_pid read-only)/mountinfo")" /ecs-execute-command- \
  "read-only: mountinfo of the container after the failed injection"
phase_container read-only-neighbour
wait_for_agent read-only-neighbour >/dev/null
check_supervisor_running "after the injection into a read-only container failed"
end_phase

# Malformed state files from an earlier run: each is named in a warning and
# skipped, and one named after a running container does not stop its
# injection.
start_phase state-files
phase_container state-files
state_id=$(docker inspect --format '{{.Id}}' state-files)
records=$TEST_STATE_DIR/containers
install -d -m 0700 "$records"
printf '{not json' >"$records/$HEX_ID_A.json"
: >"$records/$HEX_ID_B.json"
printf '[1, 2, 3]\n' >"$records/array.json"
printf '{"Id": "not-a-container-id", "Name": "ghost"}\n' >"$records/object.json"
mkdir "$records/directory.json"
printf '{"Id": "%s", "Name": "torn' "$state_id" >"$records/$state_id.json"
start_supervisor
wait_for_agent state-files >/dev/null
check_supervisor_running "after loading malformed state files"
for file in "$HEX_ID_A.json" "$HEX_ID_B.json" array.json object.json directory.json "$state_id.json"; do
  warning=$(grep -F "$records/$file" "$SUPERVISOR_LOG" | grep -F warning || true)
  [[ -n $warning ]] || fail "the supervisor log has no warning about the malformed state file $records/$file"
done
assert_eq 1 "$(status_json | jq length)" "number of containers in the status (only the running one)"
assert_eq "$state_id" "$(jq -r .Id "$records/$state_id.json" 2>/dev/null || true)" \
  "Id in the state file that the supervisor wrote in place of the torn one"
end_phase

# Invalid option values: exit code 2 and a message that names the option and
# the value, before any Docker request. The socket does not exist, so a
# supervisor that went on would fail differently.
start_phase options
invalid_options=(
  "--restart-backoff-min 5x"
  "--restart-backoff-max 10"
  "--restart-window abc"
  "--stop-grace -1s"
  "--forget-after 1x2"
  "--max-restarts 0"
  "--agent-memory-max 12Q"
  "--select-label =a"
  "--listen tcp:0.0.0.0:8080"
)
for entry in "${invalid_options[@]}"; do
  read -r option value <<<"$entry"
  status=0
  output=$("$EXECVISOR_BIN" run --docker-socket "$TEST_TMP/options/no-engine.sock" \
    --bundle "$TEST_TMP/options/bundle" --state-dir "$TEST_STATE_DIR" \
    --log-dir "$TEST_LOG_DIR" "$option" "$value" 2>&1) || status=$?
  assert_eq "$EXIT_USAGE" "$status" "exit code of 'execvisor run $option $value' (output: $output)"
  assert_contains "$output" "$option" "message of 'execvisor run $option $value'"
  assert_contains "$output" "$value" "message of 'execvisor run $option $value'"
  [[ ! -e $TEST_STATE_DIR ]] || fail "'execvisor run $option $value' created the state directory $TEST_STATE_DIR"
done

# The newest version lacks ssm-session-worker, so the next lower valid one is
# used. 3.10.0.0 is higher than 3.9.0.0 when the parts compare as numbers,
# but lower when they compare as text.
start_phase fallback
make_bundle "$TEST_BUNDLE" 3.9.0.0
make_bundle "$TEST_BUNDLE" 3.10.0.0
make_bundle "$TEST_BUNDLE" 3.11.0.0
rm "$TEST_BUNDLE/bin/3.11.0.0/ssm-session-worker"
phase_container fallback
start_supervisor
wait_for_agent fallback >/dev/null
assert_eq 3.10.0.0 "$(agent_field fallback Version)" \
  "fallback: Version in the status (3.11.0.0 lacks ssm-session-worker; 3.10.0.0 is the highest valid version)"
# An operator who installed 3.11.0.0 learns from the log why it is not used.
skipped_line=$(grep -F 3.11.0.0 "$SUPERVISOR_LOG" | grep -F ssm-session-worker || true)
[[ -n $skipped_line ]] || fail "the supervisor log does not say that version 3.11.0.0 was skipped for its missing ssm-session-worker; its lines about the bundle are:
$(grep -F "$TEST_BUNDLE" "$SUPERVISOR_LOG")"
end_phase
