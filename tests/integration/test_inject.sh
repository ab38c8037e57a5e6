#!/usr/bin/env bash
# Labelled containers get the agent, whether they start before or after the
# supervisor. Seen from the host, the agent runs in the container's namespaces
# and cgroups with no more privilege than the container's init, with stdin on
# the host's /dev/null, an allowlisted environment and the container's root.
# Seen from inside, the bundle is a read-only, nosuid, nodev mount of files
# owned by root, and /var/log/amazon/ssm is the host's per-container log
# directory.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly BUNDLE_VERSION=3.2.0.0
readonly UUID_PATTERN='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
readonly BUNDLE_BINARIES=(amazon-ssm-agent ssm-agent-worker ssm-session-worker execvisor-init)
readonly BUNDLE_DATA_FILES=(configuration/amazon-ssm-agent.json configuration/seelog.xml
  certs/amazon-ssm-agent.crt)
readonly NAMESPACES=(mnt pid net ipc uts cgroup user)

# The application's environment: every variable of the agent's allowlist,
# and variables that it must never see, among them names that only start or
# end like an allowed one.
readonly ALLOWED_ENV=(
  ECS_CONTAINER_METADATA_URI=http://metadata
  ECS_CONTAINER_METADATA_URI_V4=http://x
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/id
  AWS_CONTAINER_CREDENTIALS_FULL_URI=http://credentials
  AWS_CONTAINER_AUTHORIZATION_TOKEN=token
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/token
  http_proxy=http://p
  HTTPS_PROXY=http://q
  HTTP_PROXY=http://r
  https_proxy=http://s
  no_proxy=localhost
  NO_PROXY=127.0.0.1
)
readonly DENIED_ENV=(
  AWS_ACCESS_KEY_ID=secret
  AWS_SECRET_ACCESS_KEY=secret
  FOO=bar
  LD_PRELOAD=/lib/preload.so
  ECS_CONTAINER_METADATA_URI_V4X=http://y
  XHTTP_PROXY=http://z
)
CONTAINER_ENV=()
for variable in "${ALLOWED_ENV[@]}" "${DENIED_ENV[@]}"; do
  CONTAINER_ENV+=(-e "$variable")
done
readonly CONTAINER_ENV

check_namespaces() {
  local name=$1 agent_pid=$2 init_pid=$3 ns agent_ns init_ns

  for ns in "${NAMESPACES[@]}"; do
    agent_ns=$(readlink "/proc/$agent_pid/ns/$ns")
    init_ns=$(readlink "/proc/$init_pid/ns/$ns")
    assert_eq "$init_ns" "$agent_ns" "$name: $ns namespace of the agent (pid $agent_pid) against the container's init (pid $init_pid)"
  done
}

# Every cgroup of the agent is the init's cgroup in the same hierarchy or a
# child of it, and names the container id.
check_cgroups() {
  local name=$1 id=$2 agent_pid=$3 init_pid=$4 line hierarchy init_path agent_path

  [[ -n $(cat "/proc/$init_pid/cgroup") ]] || fail "$name: /proc/$init_pid/cgroup of the container's init is empty"
  while IFS= read -r line; do
    hierarchy=${line%:*}
    init_path=${line##*:}
    agent_path=$(awk -v prefix="$hierarchy:" 'index($0, prefix) == 1 { print substr($0, length(prefix) + 1); exit }' \
      "/proc/$agent_pid/cgroup")
    [[ -n $agent_path ]] || fail "$name: the agent has no cgroup in hierarchy '$hierarchy'; /proc/$agent_pid/cgroup is:
$(cat "/proc/$agent_pid/cgroup")"
    if [[ $agent_path != "$init_path" && $agent_path != "$init_path"/* ]]; then
      fail "$name: agent cgroup '$agent_path' in hierarchy '$hierarchy' is neither the container's cgroup '$init_path' nor below it"
    fi
    assert_contains "$agent_path" "$id" "$name: agent cgroup in hierarchy '$hierarchy'"
  done <"/proc/$init_pid/cgroup"
}

check_privilege() {
  local name=$1 agent_pid=$2 init_pid=$3 agent_bounding init_bounding extra

  assert_eq 1 "$(status_line "$agent_pid" NoNewPrivs)" "$name: NoNewPrivs of the agent"
  assert_eq 2 "$(status_line "$agent_pid" Seccomp)" "$name: Seccomp mode of the agent (2 = filter)"
  assert_eq "0 0 0 0" "$(status_line "$agent_pid" Uid)" "$name: Uid line of the agent"

  agent_bounding=$(status_line "$agent_pid" CapBnd)
  init_bounding=$(status_line "$init_pid" CapBnd)
  extra=$((16#$agent_bounding & ~16#$init_bounding))
  if ((extra != 0)); then
    fail "$name: the agent's bounding set $agent_bounding has capabilities $(printf '%016x' "$extra") that the container's init ($init_bounding) lacks"
  fi
  assert_eq 0000000000000000 "$(status_line "$agent_pid" CapAmb)" "$name: ambient capabilities of the agent"
  assert_eq 0000000000000000 "$(status_line "$agent_pid" CapInh)" "$name: inheritable capabilities of the agent"
}

# Only 0, 1 and 2 are open: stdin is the host's /dev/null, and stdout and
# stderr are the pipe that the supervisor drains.
check_fds() {
  local name=$1 agent_pid=$2 fds stdin_mount host_dev_mount fd

  fds=$(find "/proc/$agent_pid/fd" -mindepth 1 -printf '%f\n' | sort -n | tr '\n' ' ')
  assert_eq "0 1 2 " "$fds" "$name: open fds of the agent"

  assert_eq /dev/null "$(readlink "/proc/$agent_pid/fd/0")" "$name: target of the agent's fd 0"
  assert_eq "1:3" "$(stat -L -c '%t:%T' "/proc/$agent_pid/fd/0")" "$name: device number of the agent's fd 0"
  stdin_mount=$(awk '$1 == "mnt_id:" { print $2 }' "/proc/$agent_pid/fdinfo/0")
  host_dev_mount=$(findmnt -n -o ID --target /dev/null)
  assert_eq "$host_dev_mount" "$stdin_mount" "$name: mount id of the agent's stdin (the host's /dev/null is on mount $host_dev_mount)"

  for fd in 1 2; do
    if [[ $(readlink "/proc/$agent_pid/fd/$fd") != pipe:* ]]; then
      fail "$name: the agent's fd $fd is '$(readlink "/proc/$agent_pid/fd/$fd")', expected the supervisor's pipe"
    fi
  done
}

check_root_and_cwd() {
  local name=$1 agent_pid=$2 init_pid=$3 container_root

  assert_eq / "$(readlink "/proc/$agent_pid/root")" "$name: root of the agent"
  assert_eq / "$(readlink "/proc/$agent_pid/cwd")" "$name: working directory of the agent"

  container_root=$(stat -L -c '%d:%i' "/proc/$init_pid/root/.")
  assert_eq "$container_root" "$(stat -L -c '%d:%i' "/proc/$agent_pid/root/.")" \
    "$name: device:inode of the agent's root against the container's root"
  assert_eq "$container_root" "$(stat -L -c '%d:%i' "/proc/$agent_pid/cwd/.")" \
    "$name: device:inode of the agent's working directory against the container's root"
}

check_environment() {
  local name=$1 id=$2 agent_pid=$3 environment expected path variable

  environment=$(tr '\0' '\n' <"/proc/$agent_pid/environ" | LC_ALL=C sort)
  for variable in "${DENIED_ENV[@]}"; do
    if grep -q "^${variable%%=*}=" <<<"$environment"; then
      fail "$name: the agent's environment has ${variable%%=*}, which is not allowed; it is:
$environment"
    fi
  done
  assert_not_contains "$environment" EXECVISOR_HOST_SECRET "$name: environment of the agent"

  path=$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id" | grep '^PATH=')
  expected=$(printf '%s\n' "$path" "${ALLOWED_ENV[@]}" | LC_ALL=C sort)
  assert_eq "$expected" "$environment" "$name: whole environment of the agent"
}

# argv[0] is the agent's path inside the container, and its parent is
# execvisor-init from the same bundle, whose parent is the supervisor.
check_process_tree() {
  local name=$1 agent_pid=$2 bundle_dir init_pid init_argv0

  bundle_dir=$(agent_bundle_dir "$agent_pid")
  if [[ ! $bundle_dir =~ ^/ecs-execute-command-$UUID_PATTERN$ ]]; then
    fail "$name: the agent's argv[0] is '$bundle_dir/...', expected /ecs-execute-command-<uuid>/amazon-ssm-agent"
  fi
  assert_eq "$bundle_dir/amazon-ssm-agent" "$(tr '\0' '\n' <"/proc/$agent_pid/cmdline" | head -n 1)" \
    "$name: argv[0] of the agent"
  docker exec "$name" ls "$bundle_dir/amazon-ssm-agent" >/dev/null ||
    fail "$name: the agent's argv[0] $bundle_dir/amazon-ssm-agent does not exist inside the container"

  init_pid=$(status_line "$agent_pid" PPid)
  init_argv0=$(tr '\0' '\n' <"/proc/$init_pid/cmdline" | head -n 1)
  assert_eq "$bundle_dir/execvisor-init" "$init_argv0" "$name: argv[0] of the agent's parent (pid $init_pid)"
  assert_eq "$SUPERVISOR_PID" "$(status_line "$init_pid" PPid)" \
    "$name: parent of execvisor-init (pid $init_pid), expected the supervisor"
}

# From inside: the bundle mount's options, its files, their owners and
# modes, and the generated configuration.
check_bundle_inside() {
  local name=$1 agent_pid=$2 session_limit=$3 bundle_dir mountinfo entry option file listing config
  local owner mode

  bundle_dir=$(agent_bundle_dir "$agent_pid")
  mountinfo=$(docker exec "$name" cat /proc/self/mountinfo)
  entry=$(mountinfo_entry "$mountinfo" "$bundle_dir")
  [[ -n $entry ]] || fail "$name: no mount at $bundle_dir in the container's mountinfo:
$mountinfo"
  for option in ro nosuid nodev; do
    mount_has_option "$entry" "$option" || fail "$name: the bundle mount at $bundle_dir lacks option $option: $entry"
  done

  for file in "${BUNDLE_BINARIES[@]}"; do
    docker exec "$name" test -f "$bundle_dir/$file" -a -x "$bundle_dir/$file" ||
      fail "$name: $bundle_dir/$file is not an executable file inside the container"
  done
  for file in "${BUNDLE_DATA_FILES[@]}"; do
    docker exec "$name" test -f "$bundle_dir/$file" ||
      fail "$name: $bundle_dir/$file is missing inside the container"
  done

  # The SSM agent ignores a configuration that is not owned by root or that
  # group or others can write.
  listing=$(docker exec "$name" sh -c 'cd "$1" && shift && stat -c "%u:%g %a %n" "$@"' sh \
    "$bundle_dir" "${BUNDLE_BINARIES[@]}" "${BUNDLE_DATA_FILES[@]}" . configuration certs)
  while read -r owner mode file; do
    assert_eq 0:0 "$owner" "$name: owner of $bundle_dir/$file inside the container"
    if (((8#$mode & 8#022) != 0)); then
      fail "$name: $bundle_dir/$file has mode $mode inside the container; group or others may write it"
    fi
  done <<<"$listing"

  config=$(docker exec "$name" cat "$bundle_dir/configuration/amazon-ssm-agent.json")
  if [[ ! $config =~ \"SessionWorkersLimit\"[[:space:]]*:[[:space:]]*${session_limit}[^0-9] ]]; then
    fail "$name: the agent's configuration does not set \"SessionWorkersLimit\": $session_limit; it is:
$config"
  fi
}

# /var/log/amazon/ssm inside is a read-write mount of <log-dir>/<name>, the
# agent's report lands there, and a file written inside appears on the host.
check_log_mount() {
  local name=$1 host_dir=$TEST_LOG_DIR/$1 mountinfo entry inside host

  mountinfo=$(docker exec "$name" cat /proc/self/mountinfo)
  entry=$(mountinfo_entry "$mountinfo" /var/log/amazon/ssm)
  [[ -n $entry ]] || fail "$name: no mount at /var/log/amazon/ssm in the container's mountinfo:
$mountinfo"
  mount_has_option "$entry" rw || fail "$name: the log mount is not read-write: $entry"

  [[ -d $host_dir ]] || fail "$name: host log directory $host_dir is missing"
  inside=$(docker exec "$name" stat -c '%d:%i' /var/log/amazon/ssm)
  host=$(stat -c '%d:%i' "$host_dir")
  assert_eq "$host" "$inside" "$name: device:inode of /var/log/amazon/ssm inside against $host_dir"

  docker exec "$name" sh -c 'echo written-inside >/var/log/amazon/ssm/probe'
  assert_eq written-inside "$(cat "$host_dir/probe" 2>/dev/null)" "$name: file written inside at /var/log/amazon/ssm/probe, read on the host"
}

check_injection_log() {
  local name=$1 id=$2 agent_pid=$3 pattern

  pattern="container ${id:0:12} name=\"$name\": agent injected and started: version=${BUNDLE_VERSION//./\\.} pid=$agent_pid injection=[0-9]+(\.[0-9]+)?ms \(.*[0-9]ms.*\)"
  grep -qE -- "$pattern" "$SUPERVISOR_LOG" ||
    fail "$name: the supervisor log has no line matching '$pattern'; it has:
$(grep -F "${id:0:12}" "$SUPERVISOR_LOG")"
}

# The report that the test agent wrote from inside matches what the host reads
# in /proc.
check_report() {
  local name=$1 agent_pid=$2 report bundle_dir exe

  wait_for agent_report "$name" >/dev/null
  report=$(agent_report "$name")
  bundle_dir=$(agent_bundle_dir "$agent_pid")

  exe=$(report_section "$report" exe)
  assert_eq "$bundle_dir/amazon-ssm-agent" "$exe" "$name: exe section of the agent's report $report"
  assert_eq "$bundle_dir/amazon-ssm-agent" "$(report_section "$report" argv0)" "$name: argv0 section of the agent's report"
  assert_eq / "$(report_section "$report" root)" "$name: root section of the agent's report"
  assert_contains "$(report_section "$report" ids)" "uid=0 euid=0 gid=0 egid=0" "$name: ids section of the agent's report"
}

# Every check for one container with a running agent.
check_agent() {
  local name=$1 session_limit=$2 id agent_pid init_pid

  id=$(docker inspect --format '{{.Id}}' "$name")
  agent_pid=$(wait_for_agent "$name")
  init_pid=$(container_pid "$name")
  # The test agent opens files only until its report is written, so the
  # checks of its fds wait for the report.
  wait_for agent_report "$name" >/dev/null
  assert_eq "$BUNDLE_VERSION" "$(agent_field "$name" Version)" "$name: Version in the status"
  assert_eq "$id" "$(agent_field "$name" ContainerId)" "$name: ContainerId in the status"
  assert_eq "" "$(agent_field "$name" Reason)" "$name: Reason in the status of a running agent"
  assert_eq 0 "$(agent_field "$name" RestartCount)" "$name: RestartCount in the status"
  if [[ ! $(agent_field "$name" LastStartedAt) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]; then
    fail "$name: LastStartedAt in the status is '$(agent_field "$name" LastStartedAt)', expected an RFC 3339 UTC time"
  fi

  check_namespaces "$name" "$agent_pid" "$init_pid"
  check_cgroups "$name" "$id" "$agent_pid" "$init_pid"
  check_privilege "$name" "$agent_pid" "$init_pid"
  check_fds "$name" "$agent_pid"
  check_root_and_cwd "$name" "$agent_pid" "$init_pid"
  check_environment "$name" "$id" "$agent_pid"
  check_process_tree "$name" "$agent_pid"
  check_bundle_inside "$name" "$agent_pid" "$session_limit"
  check_log_mount "$name"
  check_injection_log "$name" "$id" "$agent_pid"
  check_report "$name" "$agent_pid"
  note "$name: agent pid $agent_pid passed every check"
}

run_container inject-before --label execvisor.enable=true "${CONTAINER_ENV[@]}" >/dev/null

# The supervisor gets a variable of its own that must not reach any agent.
EXECVISOR_HOST_SECRET=1 start_supervisor
wait_for agent_has_status inject-before RUNNING
assert_contains "$(tr '\0' '\n' <"/proc/$SUPERVISOR_PID/environ")" EXECVISOR_HOST_SECRET=1 \
  "environment of the supervisor (the test's premise)"

run_container inject-after --label execvisor.enable=true "${CONTAINER_ENV[@]}" >/dev/null
run_container inject-limit5 --label execvisor.enable=true --label execvisor.session-limit=5 \
  "${CONTAINER_ENV[@]}" >/dev/null
limit_bad_id=$(run_container inject-limit-bad --label execvisor.enable=true \
  --label execvisor.session-limit=abc "${CONTAINER_ENV[@]}")

check_agent inject-before 2
check_agent inject-after 2
check_agent inject-limit5 5
check_agent inject-limit-bad 2

warning=$(grep -F "${limit_bad_id:0:12}" "$SUPERVISOR_LOG" | grep -F warning | grep -F execvisor.session-limit || true)
[[ -n $warning ]] || fail "the supervisor log has no warning about label execvisor.session-limit=abc of container inject-limit-bad; its lines for it are:
$(grep -F "${limit_bad_id:0:12}" "$SUPERVISOR_LOG")"
assert_contains "$warning" abc "warning about the invalid session limit"
