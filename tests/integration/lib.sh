# Helpers for the integration tests. Each tests/integration/test_*.sh sources
# this file first:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# ctest sets the environment (tests/CMakeLists.txt):
#   EXECVISOR_BIN               the execvisor binary
#   EXECVISOR_TEST_AGENT        the test agent binary (unset until it is built)
#   EXECVISOR_INIT              execvisor's init binary (unset until it is built)
#   EXECVISOR_TEST_DOCKER_DIR   where dockerd.sh runs the private engine
#   EXECVISOR_TEST_DOCKER_SOCKET  an engine to use in place of the private one
#   EXECVISOR_SOURCE_DIR, EXECVISOR_BUILD_DIR, EXECVISOR_EXPECTED_VERSION
#
# Set here for the test: TEST_NAME (the script's name without .sh), TEST_IMAGE,
# TEST_DOCKER_SOCKET, TEST_TMP (a fresh directory, kept if the test fails) and
# below it TEST_BUNDLE, TEST_STATE_DIR and TEST_LOG_DIR for start_supervisor.
#
# A test exits 0 when it passes, 77 when it is skipped, anything else when it
# fails. On exit, whatever the outcome, the test's containers are removed and
# the processes it started are ended.

set -Eeuo pipefail
umask 022

TEST_NAME=$(basename "$0" .sh)
readonly TEST_NAME
readonly TEST_IMAGE=execvisor-test-busybox:latest
readonly TEST_LABEL="execvisor.test=$TEST_NAME"
readonly EXIT_SKIP=77

# Supervisor state, set by start_supervisor and stop_supervisor.
SUPERVISOR_PID=
SUPERVISOR_LOG=
SUPERVISOR_STATUS=
SPAWNED_PID=

# Pids of other background processes that the test started (see track_pid).
TEST_PIDS=()

fail() {
  printf 'FAIL: %s: %s\n' "$TEST_NAME" "$*" >&2
  exit 1
}

skip() {
  printf 'SKIP: %s: %s\n' "$TEST_NAME" "$*" >&2
  exit "$EXIT_SKIP"
}

note() {
  printf '%s: %s\n' "$TEST_NAME" "$*" >&2
}

assert_eq() {
  local expected=$1 actual=$2 what=${3:-value}

  if [[ $expected != "$actual" ]]; then
    fail "$what: expected '$expected', got '$actual'"
  fi
}

# assert_contains TEXT SUBSTRING [WHAT]: TEXT contains SUBSTRING literally.
assert_contains() {
  local text=$1 substring=$2 what=${3:-output}

  if [[ $text != *"$substring"* ]]; then
    fail "$what does not contain '$substring'; it is:
$text"
  fi
}

# assert_not_contains TEXT SUBSTRING [WHAT]
assert_not_contains() {
  local text=$1 substring=$2 what=${3:-output}

  if [[ $text == *"$substring"* ]]; then
    fail "$what contains '$substring' but must not; it is:
$text"
  fi
}

# assert_file_contains FILE SUBSTRING [WHAT]: FILE contains SUBSTRING literally.
assert_file_contains() {
  local file=$1 substring=$2 what=${3:-$1}

  [[ -f $file ]] || fail "$what: file $file is missing"
  if ! grep -qF -- "$substring" "$file"; then
    fail "$what does not contain '$substring'; its last lines are:
$(tail -n 20 "$file")"
  fi
}

# Run CMD until it succeeds, polling every 0.1 s, and fail the test if it has
# not succeeded within 30 s or within the seconds given with --timeout.
# Usage: wait_for [--timeout SECONDS] CMD [ARGS...]
wait_for() {
  local timeout=30 deadline

  if [[ ${1-} == --timeout ]]; then
    timeout=$2
    shift 2
  fi
  (($# > 0)) || fail "wait_for: no command given"

  deadline=$(($(_now_ms) + timeout * 1000))
  until "$@"; do
    if (($(_now_ms) >= deadline)); then
      fail "timed out after ${timeout} s waiting for: $*"
    fi
    sleep 0.1
  done
}

_now_ms() {
  local now=${EPOCHREALTIME//[.,]/}

  printf '%s\n' $((now / 1000))
}

# Return whether PID runs and is not a zombie.
pid_running() {
  local pid=$1 state

  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

_any_running() {
  local pid

  for pid in "$@"; do
    pid_running "$pid" && return 0
  done
  return 1
}

# Record PID as started by this test, so that it is ended on exit.
track_pid() {
  TEST_PIDS+=("$1")
}

# spawn LOG CMD [ARGS...]
# Run CMD in the background with its output in LOG, end it when the test exits
# (also if this shell is killed), and leave its pid in SPAWNED_PID. Call it
# directly, not in $(...), because it sets SPAWNED_PID.
spawn() {
  local log=$1
  shift

  setpriv --pdeathsig TERM -- "$@" </dev/null >>"$log" 2>&1 &
  SPAWNED_PID=$!
  track_pid "$SPAWNED_PID"
}

# The client that matches the Debian dockerd comes first; EXECVISOR_TEST_DOCKER_CLI overrides.
_find_docker_cli() {
  if [[ -n ${EXECVISOR_TEST_DOCKER_CLI-} ]]; then
    printf '%s\n' "$EXECVISOR_TEST_DOCKER_CLI"
  elif [[ -x /usr/bin/docker ]]; then
    printf '%s\n' /usr/bin/docker
  else
    command -v docker || fail "the docker client is missing; run scripts/setup"
  fi
}

# The docker client, bound to the test engine. DOCKER_HOST is exported too, so
# that programs the test runs reach the same engine.
docker() {
  command "$TEST_DOCKER_CLI" -H "unix://$TEST_DOCKER_SOCKET" "$@"
}

# run_container NAME [DOCKER RUN OPTIONS...] [-- CMD [ARGS...]]
# Start a detached container named NAME from the test image, with no network
# and labelled with this test's name, and print its id. CMD defaults to a long sleep.
run_container() {
  local name=$1 options=() command=()
  shift

  while (($# > 0)) && [[ $1 != -- ]]; do
    options+=("$1")
    shift
  done
  if (($# > 0)); then
    shift
    command=("$@")
  fi
  if ((${#command[@]} == 0)); then
    command=(sleep 86400)
  fi

  docker run --detach --network none --label "$TEST_LABEL" --name "$name" \
    "${options[@]}" "$TEST_IMAGE" "${command[@]}" ||
    fail "docker run of container '$name' failed"
}

# Print the host pid of a running container's init.
container_pid() {
  docker inspect --format '{{.State.Pid}}' "$1"
}

# make_bundle DIR [VERSION]
# Lay out an agent bundle in DIR with the ECS layout: the test agent as the
# three SSM binaries in bin/VERSION (default 3.2.0.0) and a CA bundle.
make_bundle() {
  local dir=$1 version=${2:-3.2.0.0} binary

  if [[ -z ${EXECVISOR_TEST_AGENT-} || ! -x ${EXECVISOR_TEST_AGENT-} ]]; then
    skip "the test agent is not built (EXECVISOR_TEST_AGENT='${EXECVISOR_TEST_AGENT-}')"
  fi

  install -d -m 0755 "$dir/bin/$version" "$dir/certs"
  for binary in amazon-ssm-agent ssm-agent-worker ssm-session-worker; do
    install -m 0755 "$EXECVISOR_TEST_AGENT" "$dir/bin/$version/$binary"
  done

  # Any PEM text serves: the test agent does not verify certificates.
  {
    printf -- '-----BEGIN CERTIFICATE-----\n'
    printf 'execvisor test CA bundle, not a real certificate\n' | base64 -w 64
    printf -- '-----END CERTIFICATE-----\n'
  } >"$dir/certs/tls-ca-bundle.pem"
  chmod 0644 "$dir/certs/tls-ca-bundle.pem"
}

# start_supervisor [ARGS...]
# Run `execvisor run` in the background on the test engine, with the bundle
# in TEST_BUNDLE (laid out by make_bundle unless it exists) and the state and
# log directories under TEST_TMP. Its stdout and stderr go to SUPERVISOR_LOG.
# Call it directly, not in $(...), because it sets SUPERVISOR_PID.
start_supervisor() {
  if [[ -n $SUPERVISOR_PID ]]; then
    fail "start_supervisor: a supervisor (pid $SUPERVISOR_PID) already runs; call stop_supervisor first"
  fi
  if [[ ! -d $TEST_BUNDLE ]]; then
    make_bundle "$TEST_BUNDLE"
  fi
  install -d -m 0755 "$TEST_STATE_DIR" "$TEST_LOG_DIR"

  SUPERVISOR_LOG=$TEST_TMP/supervisor.log
  SUPERVISOR_STATUS=
  # --pdeathsig ends the supervisor if this shell is killed (ctest kills a
  # test that times out with SIGKILL, and then no exit trap runs).
  setpriv --pdeathsig TERM -- "$EXECVISOR_BIN" run \
    --docker-socket "$TEST_DOCKER_SOCKET" \
    --bundle "$TEST_BUNDLE" \
    --state-dir "$TEST_STATE_DIR" \
    --log-dir "$TEST_LOG_DIR" \
    "$@" </dev/null >>"$SUPERVISOR_LOG" 2>&1 &
  SUPERVISOR_PID=$!
  note "started supervisor (pid $SUPERVISOR_PID), log $SUPERVISOR_LOG"
}

# stop_supervisor [TIMEOUT]
# Send SIGTERM to the supervisor and wait for it, at most TIMEOUT seconds
# (default 40, above the 20 s grace that agents get to stop). Its exit status
# is left in SUPERVISOR_STATUS. Fails the test if it does not exit in time.
stop_supervisor() {
  local timeout=${1:-40} pid=$SUPERVISOR_PID deadline

  [[ -n $pid ]] || fail "stop_supervisor: no supervisor runs"

  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(_now_ms) + timeout * 1000))
  while pid_running "$pid"; do
    if (($(_now_ms) >= deadline)); then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      SUPERVISOR_PID=
      fail "supervisor (pid $pid) did not exit within ${timeout} s after SIGTERM; it was killed"
    fi
    sleep 0.1
  done

  SUPERVISOR_STATUS=0
  wait "$pid" 2>/dev/null || SUPERVISOR_STATUS=$?
  SUPERVISOR_PID=
  note "supervisor (pid $pid) exited with status $SUPERVISOR_STATUS"
}

# Print the last lines of the supervisor's log, for a failure report.
print_supervisor_log() {
  if [[ -n $SUPERVISOR_LOG && -s $SUPERVISOR_LOG ]]; then
    printf -- '--- last lines of the supervisor log %s ---\n' "$SUPERVISOR_LOG" >&2
    tail -n 50 "$SUPERVISOR_LOG" >&2
    printf -- '--- end of the supervisor log ---\n' >&2
  fi
}

_remove_test_containers() {
  local ids

  ids=$(docker ps --all --quiet --filter "label=$TEST_LABEL" 2>/dev/null) || return 0
  if [[ -n $ids ]]; then
    # shellcheck disable=SC2086 # one container id per word
    docker rm --force $ids >/dev/null 2>&1 || note "could not remove containers: $ids"
  fi
}

_on_error() {
  local status=$1 line=$2 failed_command=$3

  # shellcheck disable=SC2016 # the backquotes are literal
  printf 'FAIL: %s: line %s: `%s` exited with status %s\n' "$TEST_NAME" "$line" "$failed_command" "$status" >&2
}

_on_exit() {
  local status=$? pid

  trap - ERR
  set +e

  if ((status != 0 && status != EXIT_SKIP)); then
    print_supervisor_log
    printf -- '--- containers of this test ---\n' >&2
    docker ps --all --filter "label=$TEST_LABEL" \
      --format '{{.Names}} {{.Status}}' >&2 2>/dev/null
  fi

  if [[ -n $SUPERVISOR_PID ]] && pid_running "$SUPERVISOR_PID"; then
    kill -TERM "$SUPERVISOR_PID" 2>/dev/null
    for _ in $(seq 1 300); do
      pid_running "$SUPERVISOR_PID" || break
      sleep 0.1
    done
    kill -KILL "$SUPERVISOR_PID" 2>/dev/null
  fi
  # The tracked pids, and any background job of this shell the test did not track.
  local pids=("${TEST_PIDS[@]}") job_pids
  mapfile -t job_pids < <(jobs -p)
  pids+=("${job_pids[@]}")
  if ((${#pids[@]} > 0)); then
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 1 50); do
      _any_running "${pids[@]}" || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null
  fi

  _remove_test_containers

  if ((status == 0)); then
    rm -rf --one-file-system "$TEST_TMP"
    printf 'PASS: %s\n' "$TEST_NAME" >&2
  elif ((status != EXIT_SKIP)); then
    printf '%s: files kept in %s\n' "$TEST_NAME" "$TEST_TMP" >&2
  else
    rm -rf --one-file-system "$TEST_TMP"
  fi
  exit "$status"
}

_setup() {
  [[ $EUID -eq 0 ]] || skip "integration tests must run as root"
  [[ -n ${EXECVISOR_BIN-} ]] || fail "EXECVISOR_BIN is not set; run the tests through ctest"

  if [[ -n ${EXECVISOR_TEST_DOCKER_SOCKET-} ]]; then
    TEST_DOCKER_SOCKET=$EXECVISOR_TEST_DOCKER_SOCKET
  elif [[ -n ${EXECVISOR_TEST_DOCKER_DIR-} ]]; then
    TEST_DOCKER_SOCKET=$EXECVISOR_TEST_DOCKER_DIR/docker.sock
  else
    fail "neither EXECVISOR_TEST_DOCKER_SOCKET nor EXECVISOR_TEST_DOCKER_DIR is set; run the tests through ctest"
  fi
  TEST_DOCKER_CLI=$(_find_docker_cli)
  export DOCKER_HOST=unix://$TEST_DOCKER_SOCKET
  readonly TEST_DOCKER_SOCKET TEST_DOCKER_CLI

  # A short path under /tmp, because the supervisor makes unix sockets below it.
  TEST_TMP=$(mktemp -d "/tmp/evt-${TEST_NAME:0:16}.XXXXXX")
  TEST_BUNDLE=$TEST_TMP/bundle
  TEST_STATE_DIR=$TEST_TMP/state
  TEST_LOG_DIR=$TEST_TMP/log
  readonly TEST_TMP

  trap '_on_error $? $LINENO "$BASH_COMMAND"' ERR
  trap _on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # Containers left by an earlier run of this test on a long-lived engine.
  _remove_test_containers
}

_setup
