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

# --- injection helpers ---
# Helpers for the tests of injection, selection and bad input. They read the
# supervisor's state with `execvisor status --json` (through jq) and look at
# containers and agents from the host.

# Print the JSON array of `execvisor status --json` for the test's state dir.
status_json() {
  "$EXECVISOR_BIN" status --state-dir "$TEST_STATE_DIR" --json
}

# agent_field NAME FIELD: print FIELD of the status entry of the container
# named NAME, or nothing when the status has no such container.
agent_field() {
  local name=$1 field=$2

  status_json 2>/dev/null |
    jq -r --arg name "$name" --arg field "$field" \
      '.[] | select(.ContainerName == $name) | .[$field] // empty | tostring'
}

# Return whether the status lists the container NAME with LastStatus STATUS.
agent_has_status() {
  [[ $(agent_field "$1" LastStatus) == "$2" ]]
}

# Return whether the status lists the container NAME at all.
agent_listed() {
  status_json 2>/dev/null | jq -e --arg name "$1" 'any(.[]; .ContainerName == $name)' >/dev/null
}

# wait_for_agent NAME [TIMEOUT]: wait until the agent of the container NAME
# is RUNNING with a pid, and print that host pid.
wait_for_agent() {
  local name=$1 timeout=${2:-30} pid

  wait_for --timeout "$timeout" agent_has_status "$name" RUNNING
  pid=$(agent_field "$name" Pid)
  [[ $pid =~ ^[1-9][0-9]*$ ]] || fail "status of container $name: RUNNING but Pid is '$pid'"
  printf '%s\n' "$pid"
}

# agent_report NAME: print the path of a test agent report in the host log
# directory of the container NAME, or return 1 if there is none yet. The
# directory is <log-dir>/NAME, so NAME must already be safe as a file name.
agent_report() {
  local name=$1 reports

  reports=("$TEST_LOG_DIR/$name"/test-agent-*.report)
  [[ -f ${reports[0]} ]] || return 1
  printf '%s\n' "${reports[0]}"
}

# report_section FILE NAME: print the lines of section NAME ("== NAME ==")
# of a test agent report.
report_section() {
  awk -v header="== $2 ==" '
    /^== .* ==$/ { inside = ($0 == header); next }
    inside { print }
  ' "$1"
}

# status_line PID KEY: print the value of KEY in /proc/PID/status, with its
# fields joined by single spaces ("Uid" gives "0 0 0 0").
status_line() {
  awk -v key="$2:" '$1 == key { $1 = ""; sub(/^[ \t]+/, ""); print; exit }' "/proc/$1/status"
}

# mountinfo_entry MOUNTINFO MOUNT_POINT: print the last line of MOUNTINFO
# (the text of a /proc/PID/mountinfo) whose mount point is MOUNT_POINT, which
# is the mount on top.
mountinfo_entry() {
  awk -v target="$2" '$5 == target { line = $0 } END { if (line != "") print line }' <<<"$1"
}

# Return whether a mountinfo line's per-mount options (field 6) contain OPTION.
mount_has_option() {
  local line=$1 option=$2 options

  options=$(awk '{ print $6 }' <<<"$line")
  [[ ,$options, == *",$option,"* ]]
}

# agent_bundle_dir PID: print the directory of the bundle inside the
# container, /ecs-execute-command-<uuid>, from the argv[0] of the agent with
# host pid PID.
agent_bundle_dir() {
  local pid=$1 argv0

  argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)
  printf '%s\n' "${argv0%/*}"
}

# tree_fingerprint DIR...: print for every entry below each DIR its path,
# type, mode, owner and, for a regular file, its SHA-256, so that two calls
# can be compared to find any change of content or mode.
tree_fingerprint() {
  local dir

  for dir in "$@"; do
    find "$dir" -printf '%p %y %m %U:%G\n' | sort
    find "$dir" -type f -print0 | sort -z | xargs -0 -r sha256sum
  done
}

# build_test_image TAG DOCKERFILE_TEXT: build an image named TAG from a
# Dockerfile with no build context and no network, so that it works on the
# offline test engine. The image is removed when the test exits (see
# remove_test_images).
TEST_IMAGES=()
build_test_image() {
  local tag=$1 dockerfile=$2 output

  if ! output=$(docker build --quiet --network none --tag "$tag" - <<<"$dockerfile" 2>&1); then
    fail "docker build of image $tag failed: $output"
  fi
  TEST_IMAGES+=("$tag")
}

# Remove the images that build_test_image built. Call it at the end of a test
# that passed: a failed test keeps them for inspection, and the next run
# builds them again under the same tags.
remove_test_images() {
  if ((${#TEST_IMAGES[@]} > 0)); then
    _remove_test_containers
    docker image rm --force "${TEST_IMAGES[@]}" >/dev/null 2>&1 ||
      note "could not remove images: ${TEST_IMAGES[*]}"
  fi
}

# run_container_with_files NAME DIR [DOCKER CREATE OPTIONS...] [-- CMD [ARGS...]]
# Like run_container, but copy the tree in DIR (symlinks kept as they are)
# into the container's root before it starts, so that the files are there
# before any supervisor sees the container. Prints the container id.
run_container_with_files() {
  local name=$1 dir=$2 options=() command=() id
  shift 2

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

  id=$(docker create --network none --label "$TEST_LABEL" --name "$name" \
    "${options[@]}" "$TEST_IMAGE" "${command[@]}") ||
    fail "docker create of container '$name' failed"
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . | docker cp - "$name:/" ||
    fail "docker cp of $dir into container '$name' failed"
  docker start "$name" >/dev/null || fail "docker start of container '$name' failed"
  printf '%s\n' "$id"
}

# --- supervision helpers ---
# Helpers for the tests of the agent's lifecycle: its restarts, the container's
# lifecycle, the supervisor's and the engine's restarts, the agent's process
# tree and churn. They query the supervisor that start_supervisor started,
# through `execvisor status --json` on TEST_STATE_DIR.

TEST_AGENT_CONTROL_FILE=/etc/execvisor-test-agent.conf
SUPERVISOR_SELECT_LABEL=execvisor.enable=true
AGENT_CGROUP_NAME=execvisor-agent

# Print the supervisor's agent list as JSON. When `execvisor status` fails,
# print its message on stderr and return 1.
checked_status_json() {
  local output

  if ! output=$("$EXECVISOR_BIN" status --state-dir "$TEST_STATE_DIR" --json 2>&1); then
    printf '%s: execvisor status --state-dir %s failed: %s\n' "$TEST_NAME" "$TEST_STATE_DIR" "$output" >&2
    return 1
  fi
  printf '%s\n' "$output"
}

# agent_status_entry CONTAINER: print the status entry of CONTAINER (its full id or
# its name) as one line of JSON, or nothing when the supervisor does not list it.
agent_status_entry() {
  local container=$1

  checked_status_json | jq -c --arg c "$container" '.[] | select(.ContainerId == $c or .ContainerName == $c)'
}

# agent_status_field CONTAINER FIELD: print FIELD (LastStatus, Reason, Pid,
# RestartCount, LastStartedAt, Version...) of CONTAINER's status entry, or
# nothing when the supervisor does not list it or the field is null.
agent_status_field() {
  local container=$1 field=$2

  checked_status_json | jq -r --arg c "$container" --arg f "$field" \
    '.[] | select(.ContainerId == $c or .ContainerName == $c) | .[$f] // empty'
}

# agent_in_state CONTAINER STATE [OLD_PID]: whether CONTAINER's agent is in
# STATE. For RUNNING, its pid must also be set and differ from OLD_PID.
agent_in_state() {
  local container=$1 state=$2 old_pid=${3-} entry status pid

  entry=$(agent_status_entry "$container" 2>/dev/null) || return 1
  status=$(jq -r '.LastStatus // empty' <<<"$entry")
  pid=$(jq -r '.Pid // 0' <<<"$entry")
  [[ $status == "$state" ]] || return 1
  if [[ $state == RUNNING ]]; then
    [[ $pid != 0 && $pid != "$old_pid" ]] || return 1
  fi
}

# wait_agent_state [--timeout SECONDS] CONTAINER STATE [OLD_PID]
# Wait until agent_in_state is true (30 s by default). On timeout, fail with
# the container's status entry.
wait_agent_state() {
  local timeout=30 deadline

  if [[ ${1-} == --timeout ]]; then
    timeout=$2
    shift 2
  fi
  local container=$1 state=$2 old_pid=${3-}

  deadline=$(($(_now_ms) + timeout * 1000))
  until agent_in_state "$container" "$state" "$old_pid"; do
    if (($(_now_ms) >= deadline)); then
      fail "the agent of container $container is not $state${old_pid:+ with a pid other than $old_pid} after ${timeout} s; its status is: $(agent_status_entry "$container" 2>&1)"
    fi
    sleep 0.1
  done
}

# run_agent_container NAME CONTROL [DOCKER RUN OPTIONS...] [-- CMD [ARGS...]]
# Like run_container, for a container that the supervisor selects
# (execvisor.enable=true). With CONTROL not empty, it is written to the test
# agent's control file in the container before the container starts, so that
# the first agent reads it. Prints the container's id.
run_agent_container() {
  local name=$1 control=$2 options=() command=() id control_file
  shift 2

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

  id=$(docker create --network none --label "$TEST_LABEL" --label "$SUPERVISOR_SELECT_LABEL" \
    --name "$name" "${options[@]}" "$TEST_IMAGE" "${command[@]}") ||
    fail "docker create of container '$name' failed"
  if [[ -n $control ]]; then
    control_file=$TEST_TMP/control-$name.conf
    printf '%s\n' "$control" >"$control_file"
    docker cp "$control_file" "$id:$TEST_AGENT_CONTROL_FILE" ||
      fail "docker cp of the agent's control file into container '$name' failed"
  fi
  docker start "$id" >/dev/null || fail "docker start of container '$name' failed"
  printf '%s\n' "$id"
}

# Print the host pids of every process in the pid namespace of CONTAINER's
# init, the init included. Prints nothing when the container does not run.
container_namespace_pids() {
  local init_pid namespace entry

  init_pid=$(container_pid "$1" 2>/dev/null) || return 0
  [[ $init_pid =~ ^[0-9]+$ && $init_pid != 0 ]] || return 0
  namespace=$(readlink "/proc/$init_pid/ns/pid" 2>/dev/null) || return 0

  for entry in /proc/[0-9]*; do
    if [[ $(readlink "$entry/ns/pid" 2>/dev/null) == "$namespace" ]]; then
      printf '%s\n' "${entry#/proc/}"
    fi
  done
}

# Print the first word of PID's command line, or nothing once it is gone.
process_argv0() {
  local argv0

  { IFS= read -r -d '' argv0 || true; } <"/proc/$1/cmdline" 2>/dev/null || return 0
  printf '%s\n' "$argv0"
}

# Print the host pids of the agent's tree in CONTAINER: the processes of its
# pid namespace that run from the bundle directory /ecs-execute-command-*
# (execvisor-init, the agent and whatever the agent forked).
agent_tree_pids() {
  local pid

  for pid in $(container_namespace_pids "$1"); do
    if [[ $(process_argv0 "$pid") == /ecs-execute-command-* ]]; then
      printf '%s\n' "$pid"
    fi
  done
}

# Print how many agent processes (argv[0] ending in /amazon-ssm-agent) run in
# CONTAINER. Processes that the agent forked count too.
count_agents() {
  local pid count=0

  for pid in $(agent_tree_pids "$1"); do
    if pid_running "$pid" && [[ $(process_argv0 "$pid") == */amazon-ssm-agent ]]; then
      count=$((count + 1))
    fi
  done
  printf '%s\n' "$count"
}

# Print field N of /proc/PID/stat (numbered as in proc(5)); the command name,
# field 2, may hold spaces, so fields are counted after its closing ')'.
stat_field() {
  local stat index=$(($2 - 2))

  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split the fields after the command name
  set -- $stat
  printf '%s\n' "${!index}"
}

# Print the start time of PID (field 22, in clock ticks after boot), which
# distinguishes a process from a later one with the same pid.
process_start_time() {
  stat_field "$1" 22
}

# Print PID's parent pid.
process_ppid() {
  stat_field "$1" 4
}

# Print PID's state letter (R, S, D, Z...).
process_state() {
  local stat

  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

# Print how many file descriptors PID has open.
process_fd_count() {
  local fds

  fds=$(ls "/proc/$1/fd") || fail "cannot list the fds of pid $1"
  wc -l <<<"$fds"
}

# Print PID's resident set size in KiB (VmRSS).
process_rss_kib() {
  awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"
}

# Print the directories of CONTAINER's cgroups in every hierarchy mounted
# under /sys/fs/cgroup (cgroup v1 and v2), read from the cgroup file of its
# init while it runs.
container_cgroup_dirs() {
  local init_pid line hierarchy controllers path mount_point

  init_pid=$(container_pid "$1") || fail "cannot find the init of container $1"
  while IFS= read -r line; do
    hierarchy=${line%%:*}
    line=${line#*:}
    controllers=${line%%:*}
    path=${line#*:}
    if [[ $hierarchy == 0 && -z $controllers ]]; then
      mount_point=$(findmnt -rn -t cgroup2 -o TARGET | head -n 1)
    else
      mount_point=$(findmnt -rn -t cgroup -o TARGET,OPTIONS |
        awk -v c="${controllers#name=}" '{ n = split($2, o, ","); for (i = 1; i <= n; i++) if (o[i] == c || o[i] == "name=" c) { print $1; exit } }')
    fi
    if [[ -n $mount_point && -d $mount_point$path ]]; then
      printf '%s\n' "$mount_point$path"
    fi
  done <"/proc/$init_pid/cgroup"
}

# Print the agent's child cgroups of CONTAINER that exist now, one directory a
# line, given the container's cgroup directories (from container_cgroup_dirs).
existing_agent_cgroups() {
  local dir

  for dir in "$@"; do
    if [[ -d $dir/$AGENT_CGROUP_NAME ]]; then
      printf '%s\n' "$dir/$AGENT_CGROUP_NAME"
    fi
  done
}

# kill_supervisor_hard: SIGKILL the supervisor, as a crash would, and wait
# until it is gone. Its agents are left behind.
kill_supervisor_hard() {
  local pid=$SUPERVISOR_PID

  [[ -n $pid ]] || fail "kill_supervisor_hard: no supervisor runs"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  SUPERVISOR_PID=
  note "killed the supervisor (pid $pid) with SIGKILL"
}

# Print how many lines of the supervisor's log there are now, to look only at
# what it logs later with supervisor_log_since.
supervisor_log_mark() {
  if [[ -f $SUPERVISOR_LOG ]]; then
    wc -l <"$SUPERVISOR_LOG"
  else
    printf '0\n'
  fi
}

# supervisor_log_since MARK: print the lines of the supervisor's log after MARK.
supervisor_log_since() {
  tail -n "+$(($1 + 1))" "$SUPERVISOR_LOG"
}

# count_matching_lines TEXT SUBSTRING: print how many lines of TEXT contain SUBSTRING.
count_matching_lines() {
  local count

  count=$(grep -cF -- "$2" <<<"$1") || true
  printf '%s\n' "${count:-0}"
}

# Failed checks that let the test go on, so that one run shows every broken
# behaviour. finish_deferred_checks fails the test at its end if there are any.
DEFERRED_FAILURES=()

# fail_later MESSAGE: record a failed check and go on. Call it in the test's
# shell, not in $(...), where the record would be lost.
fail_later() {
  DEFERRED_FAILURES+=("$*")
  printf 'FAIL (the test goes on): %s: %s\n' "$TEST_NAME" "$*" >&2
}

# expect_eq EXPECTED ACTUAL [WHAT]: assert_eq that fails later.
expect_eq() {
  local expected=$1 actual=$2 what=${3:-value}

  if [[ $expected != "$actual" ]]; then
    fail_later "$what: expected '$expected', got '$actual'"
  fi
}

# Fail the test if any check failed with fail_later.
finish_deferred_checks() {
  local count=${#DEFERRED_FAILURES[@]}

  if ((count > 0)); then
    fail "$count check(s) failed:$(printf '\n  - %s' "${DEFERRED_FAILURES[@]}")"
  fi
}

# settled_fd_count PID: print how many fds PID has open, once two reads 0.3 s
# apart agree (for at most 5 s). A connection that a status query or an engine
# request leaves closing is then no longer counted.
settled_fd_count() {
  local pid=$1 previous current tries=15

  previous=$(process_fd_count "$pid")
  while ((tries-- > 0)); do
    sleep 0.3
    current=$(process_fd_count "$pid")
    if [[ $current == "$previous" ]]; then
      break
    fi
    previous=$current
  done
  printf '%s\n' "$previous"
}

# Print the supervisor's open fds, one "fd -> target" a line, for a message.
describe_fds() {
  local fd

  for fd in "/proc/$1/fd"/*; do
    printf '%s -> %s\n' "${fd##*/}" "$(readlink "$fd" 2>/dev/null)"
  done
}

# start_supervisor_synced [ARGS...]: start_supervisor, then wait until the
# supervisor responds to status queries and has read the engine's container list.
start_supervisor_synced() {
  local mark

  mark=$(supervisor_log_mark)
  start_supervisor "$@"
  wait_for --timeout 20 _supervisor_synced_since "$mark"
}

_supervisor_synced_since() {
  pid_running "$SUPERVISOR_PID" || fail "the supervisor (pid $SUPERVISOR_PID) exited during start-up"
  supervisor_log_since "$1" | grep -qF 'synchronized with Docker engine' &&
    "$EXECVISOR_BIN" status --state-dir "$TEST_STATE_DIR" >/dev/null 2>&1
}

# --- reporting helpers ---
# Helpers for the tests of the task metadata endpoint, the pushed reports and
# the audit log: HTTP requests to the supervisor's listeners, the receiver of
# reports (tests/integration/receiver.py) and checks of JSON lines.

# The HTTP status, the header block (names in lowercase) and the body of the
# last endpoint_request.
HTTP_STATUS=
HTTP_HEADERS=
HTTP_BODY=

# The receiver that start_receiver started last.
RECEIVER_PID=
RECEIVER_PORT=
RECEIVER_RECORDS=

# Options of `execvisor run` that select only the containers that
# run_agent_container starts in this test, so that containers left running by
# another test on the same engine add no agents, reports or audit lines.
OWN_CONTAINERS_SELECTION=(--select-label "$SUPERVISOR_SELECT_LABEL" --select-label "$TEST_LABEL")

# The default listener of the supervisor that start_supervisor starts.
endpoint_socket() {
  printf '%s\n' "$TEST_STATE_DIR/tmde.sock"
}

# endpoint_request [--listener unix:PATH|tcp:HOST:PORT] METHOD URL_PATH
# Send one request to the supervisor's endpoint (default: its unix socket in
# TEST_STATE_DIR) and leave the response in HTTP_STATUS, HTTP_HEADERS and
# HTTP_BODY. Call it directly, not in $(...), because it sets those. Fails the
# test if no HTTP response comes within 10 s.
endpoint_request() {
  local listener method url_path curl_target=() method_options=() base headers_file body_file

  listener=unix:$(endpoint_socket)

  if [[ ${1-} == --listener ]]; then
    listener=$2
    shift 2
  fi
  method=$1
  url_path=$2

  case $listener in
    unix:*)
      curl_target=(--unix-socket "${listener#unix:}")
      base=http://localhost
      ;;
    tcp:*) base=http://${listener#tcp:} ;;
    *) fail "endpoint_request: invalid listener '$listener'" ;;
  esac

  headers_file=$TEST_TMP/http-headers
  body_file=$TEST_TMP/http-body
  if [[ $method == HEAD ]]; then
    method_options=(--head)
  else
    method_options=(--request "$method")
  fi
  if ! HTTP_STATUS=$(curl --silent --show-error --max-time 10 --noproxy '*' "${curl_target[@]}" \
    "${method_options[@]}" --dump-header "$headers_file" --output "$body_file" \
    --write-out '%{http_code}' "$base$url_path" 2>"$TEST_TMP/http-error"); then
    fail "$method $url_path on $listener failed: $(cat "$TEST_TMP/http-error")"
  fi
  HTTP_HEADERS=$(tr -d '\r' <"$headers_file" | awk 'NR == 1 { print; next } { i = index($0, ":"); if (i) print tolower(substr($0, 1, i)) substr($0, i + 1) }')
  # With --head, curl reads no body and writes the headers to the output.
  if [[ $method == HEAD ]]; then
    HTTP_BODY=
  else
    HTTP_BODY=$(cat "$body_file")
  fi
}

# http_header NAME: print the value of header NAME (lowercase) of the last
# endpoint_request, or nothing.
http_header() {
  awk -v name="$1:" '$1 == name { sub(/^[^:]*: */, ""); print; exit }' <<<"$HTTP_HEADERS"
}

# endpoint_get_json [--listener LISTENER] URL_PATH: print the JSON body of a
# GET, and fail the test unless the status is 200 and the type application/json.
endpoint_get_json() {
  local listener_options=()

  if [[ ${1-} == --listener ]]; then
    listener_options=(--listener "$2")
    shift 2
  fi
  endpoint_request "${listener_options[@]}" GET "$1"
  [[ $HTTP_STATUS == 200 ]] || fail "GET $1: expected status 200, got $HTTP_STATUS with body: $HTTP_BODY"
  [[ $(http_header content-type) == application/json* ]] ||
    fail "GET $1: expected Content-Type application/json, got '$(http_header content-type)'"
  jq -e . >/dev/null <<<"$HTTP_BODY" || fail "GET $1: the body is not JSON: $HTTP_BODY"
  printf '%s\n' "$HTTP_BODY"
}

# assert_json_error STATUS WHAT: the last endpoint_request got STATUS
# with a JSON body {"error": non-empty text, "status": STATUS}.
assert_json_error() {
  local status=$1 what=$2

  assert_eq "$status" "$HTTP_STATUS" "HTTP status of $what"
  assert_contains "$(http_header content-type)" application/json "Content-Type of $what"
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$HTTP_BODY" ||
    fail "$what: the body is not a JSON object: $HTTP_BODY"
  assert_eq "$status" "$(jq -r '.status' <<<"$HTTP_BODY")" "\"status\" in the body of $what"
  jq -e '.error | type == "string" and length > 0' >/dev/null <<<"$HTTP_BODY" ||
    fail "$what: the body has no error message: $HTTP_BODY"
}

# metric_value TEXT SERIES: print the value of SERIES (a metric name with its
# labels exactly as written, such as execvisor_agents{state="running"}) in
# the Prometheus text TEXT, or nothing when TEXT lacks it.
metric_value() {
  awk -v series="$2" '$1 == series { print $2; exit }' <<<"$1"
}

# Print a TCP port on 127.0.0.1 that is free now. Another process may take it
# before the caller binds it, which is unlikely on a test host.
free_tcp_port() {
  "$(receiver_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Debian's python3 (scripts/setup installs it) comes first.
receiver_python() {
  if [[ -x /usr/bin/python3 ]]; then
    printf '%s\n' /usr/bin/python3
  else
    command -v python3 || fail "python3 is missing; run scripts/setup"
  fi
}

# start_receiver NAME (--port PORT | --unix PATH) [RECEIVER OPTIONS...]
# Start tests/integration/receiver.py, which appends each report it accepts
# to TEST_TMP/NAME.jsonl and logs each request to TEST_TMP/NAME.access, and
# wait until it listens. With --port 0 it picks a free port. Sets
# RECEIVER_PID, RECEIVER_PORT (TCP only) and RECEIVER_RECORDS; call it
# directly, not in $(...). It exits when the test exits, and by itself after
# 120 s unless --max-seconds sets another limit.
start_receiver() {
  local name=$1 socket_path='' port_file=''
  shift

  if [[ ${1-} == --port ]]; then
    port_file=$TEST_TMP/$name.port
    rm -f "$port_file"
    set -- "$@" --port-file "$port_file"
  elif [[ ${1-} == --unix ]]; then
    socket_path=$2
  else
    fail "start_receiver: expected --port PORT or --unix PATH after the name"
  fi

  RECEIVER_RECORDS=$TEST_TMP/$name.jsonl
  spawn "$TEST_TMP/$name.log" "$(receiver_python)" "$EXECVISOR_SOURCE_DIR/tests/integration/receiver.py" \
    --records "$RECEIVER_RECORDS" --access-log "$TEST_TMP/$name.access" --max-seconds 120 "$@"
  RECEIVER_PID=$SPAWNED_PID
  RECEIVER_PORT=

  wait_for --timeout 10 _receiver_ready "$RECEIVER_PID" "$TEST_TMP/$name.log" "$port_file" "$socket_path"
  if [[ -n $port_file ]]; then
    RECEIVER_PORT=$(cat "$port_file")
  fi
  note "receiver $name (pid $RECEIVER_PID) listens on ${socket_path:-127.0.0.1:$RECEIVER_PORT}, records in $RECEIVER_RECORDS"
}

_receiver_ready() {
  local pid=$1 log=$2 port_file=$3 socket_path=$4

  pid_running "$pid" || fail "the receiver (pid $pid) exited during start-up; its output: $(tail -n 20 "$log")"
  if [[ -n $port_file ]]; then
    [[ -s $port_file ]]
  else
    [[ -S $socket_path ]]
  fi
}

# stop_receiver PID: end a receiver with SIGTERM and wait until it is gone,
# so that its port or socket no longer accepts connections.
stop_receiver() {
  local pid=$1

  kill -TERM "$pid" 2>/dev/null || true
  wait_for --timeout 10 _pid_gone "$pid"
  wait "$pid" 2>/dev/null || true
}

_pid_gone() {
  ! pid_running "$1"
}

# received_reports RECORDS CONTAINER_ID: print the reports of CONTAINER_ID
# in the records file of a receiver, one compact JSON line each, in the order
# of their arrival.
received_reports() {
  jq -c --arg id "$2" 'select(.ContainerId == $id)' "$1"
}

# received_count RECORDS CONTAINER_ID: print how many reports of CONTAINER_ID arrived.
received_count() {
  received_reports "$1" "$2" | wc -l
}

# Return whether the receiver's RECORDS contain a report of CONTAINER_ID
# that matches the jq condition FILTER (such as '.Event == "exited"').
has_report() {
  local records=$1 id=$2 filter=${3:-true}

  jq -e -s --arg id "$id" "any(.[]; .ContainerId == \$id and ($filter))" "$records" >/dev/null 2>&1
}

# assert_rfc3339_utc VALUE WHAT: VALUE is a date and time in RFC 3339 with
# the UTC offset Z, such as 2024-05-01T12:00:00.123Z.
assert_rfc3339_utc() {
  local value=$1 what=$2

  if [[ ! $value =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$ ]]; then
    fail "$what: expected an RFC 3339 time in UTC (YYYY-MM-DDTHH:MM:SS[.fraction]Z), got '$value'"
  fi
  date --utc --date "$value" +%s >/dev/null 2>&1 || fail "$what: '$value' is not a valid date"
}

# assert_json_lines FILE WHAT: FILE ends with a newline and each of its lines
# is one JSON object.
assert_json_lines() {
  local file=$1 what=$2 line_number=0 line

  [[ -s $file ]] || fail "$what: $file is missing or empty"
  [[ $(tail -c 1 "$file" | od -An -c | tr -d ' ') == '\n' ]] ||
    fail "$what: $file does not end with a newline; its last line is: $(tail -n 1 "$file")"
  while IFS= read -r line; do
    line_number=$((line_number + 1))
    jq -e 'type == "object"' >/dev/null 2>&1 <<<"$line" ||
      fail "$what: line $line_number of $file is not a JSON object: $line"
  done <"$file"
}

# time_ms RFC3339: print the milliseconds since the epoch of a time that the
# supervisor wrote, such as 2024-05-01T12:00:00.123Z.
time_ms() {
  local seconds fraction=0

  seconds=$(date --utc --date "$1" +%s) || fail "time_ms: invalid time '$1'"
  if [[ $1 =~ \.([0-9]+)Z$ ]]; then
    fraction=${BASH_REMATCH[1]}000
    fraction=$((10#${fraction:0:3}))
  fi
  printf '%s\n' $((seconds * 1000 + fraction))
}
