#!/usr/bin/env bash
# The supervisor injects the agent only into the containers its rule selects:
# by default those labelled execvisor.enable=true, with --select-label those
# that carry every given label, and with --all every container. A container
# that is not selected is left untouched: no agent process, no mount, no
# files in its root, no host log directory and no entry in the status.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Time given to the supervisor to act on a container that it should ignore
# before the test checks that nothing happened. The test first waits for a
# selected container started after the ignored ones, so this pause only
# covers the supervisor handling the two out of order.
readonly IGNORE_SETTLE_SECONDS=1

PHASE_CONTAINERS=()

# start_phase NAME: give the next supervisor its own state and log
# directories, so that each phase starts from scratch.
start_phase() {
  TEST_STATE_DIR=$TEST_TMP/$1/state
  TEST_LOG_DIR=$TEST_TMP/$1/log
  PHASE_CONTAINERS=()
  note "phase $1"
}

# Stop the supervisor and remove the phase's containers, which also ends
# the agents that it left running in them.
end_phase() {
  # shellcheck disable=SC2119 # the default timeout
  stop_supervisor
  if ((${#PHASE_CONTAINERS[@]} > 0)); then
    docker rm --force "${PHASE_CONTAINERS[@]}" >/dev/null
  fi
}

# phase_container NAME [LABEL...]: start a container with these labels.
phase_container() {
  local name=$1 label options=()
  shift

  for label in "$@"; do
    options+=(--label "$label")
  done
  run_container "$name" "${options[@]}" >/dev/null
  PHASE_CONTAINERS+=("$name")
}

check_selected() {
  local name=$1 agent_pid bundle_dir

  agent_pid=$(wait_for_agent "$name")
  bundle_dir=$(agent_bundle_dir "$agent_pid")
  docker exec "$name" test -x "$bundle_dir/amazon-ssm-agent" ||
    fail "$name: selected, but $bundle_dir/amazon-ssm-agent is missing inside the container"
  [[ -d $TEST_LOG_DIR/$name ]] || fail "$name: selected, but its host log directory $TEST_LOG_DIR/$name is missing"
}

# Count the processes in the PID namespace of the container's init.
count_container_processes() {
  local init_pid=$1 pid_ns entry count=0

  pid_ns=$(readlink "/proc/$init_pid/ns/pid")
  for entry in /proc/[0-9]*; do
    if [[ $(readlink "$entry/ns/pid" 2>/dev/null) == "$pid_ns" ]]; then
      count=$((count + 1))
    fi
  done
  printf '%s\n' "$count"
}

check_untouched() {
  local name=$1 init_pid root mountinfo leftovers

  init_pid=$(container_pid "$name")
  root=/proc/$init_pid/root

  if agent_listed "$name"; then
    fail "$name: not selected, but the status lists it: $(status_json)"
  fi
  [[ ! -e $TEST_LOG_DIR/$name ]] || fail "$name: not selected, but its host log directory $TEST_LOG_DIR/$name exists"

  leftovers=$(compgen -G "$root/ecs-execute-command-*" || true)
  [[ -z $leftovers ]] || fail "$name: not selected, but its root has: $leftovers"
  [[ ! -e $root/var/log/amazon ]] || fail "$name: not selected, but its root has /var/log/amazon"

  mountinfo=$(cat "/proc/$init_pid/mountinfo")
  assert_not_contains "$mountinfo" /ecs-execute-command- "$name: mountinfo of the unselected container"
  assert_not_contains "$mountinfo" /var/log/amazon/ssm "$name: mountinfo of the unselected container"

  assert_eq 1 "$(count_container_processes "$init_pid")" \
    "$name: number of processes in the unselected container's PID namespace (only its init)"
}

# Default rule: execvisor.enable=true, with that exact value. Containers
# started before the supervisor are handled by its first synchronization,
# the later ones by the events.
start_phase default
phase_container default-plain
phase_container default-disabled execvisor.enable=false
phase_container default-yes execvisor.enable=yes
phase_container default-enabled execvisor.enable=true
start_supervisor
check_selected default-enabled
phase_container default-plain-late
phase_container default-enabled-late execvisor.enable=true
check_selected default-enabled-late
sleep "$IGNORE_SETTLE_SECONDS"
check_untouched default-plain
check_untouched default-disabled
check_untouched default-yes
check_untouched default-plain-late
assert_eq 2 "$(status_json | jq length)" "number of containers in the status with the default rule"
end_phase

# --select-label team=a replaces the default rule.
start_phase team
phase_container team-a team=a
phase_container team-b team=b
phase_container team-enabled execvisor.enable=true
phase_container team-plain
start_supervisor --select-label team=a
check_selected team-a
phase_container team-a-late team=a
phase_container team-b-late team=b
check_selected team-a-late
sleep "$IGNORE_SETTLE_SECONDS"
check_untouched team-b
check_untouched team-enabled
check_untouched team-plain
check_untouched team-b-late
assert_eq 2 "$(status_json | jq length)" "number of containers in the status with --select-label team=a"
end_phase

# A key without a value matches any value, and every label given must match.
start_phase multi
phase_container multi-a-web team=a tier=web
phase_container multi-b-web team=b tier=web
phase_container multi-a-db team=a tier=db
phase_container multi-web tier=web
start_supervisor --select-label team --select-label tier=web
check_selected multi-a-web
check_selected multi-b-web
sleep "$IGNORE_SETTLE_SECONDS"
check_untouched multi-a-db
check_untouched multi-web
assert_eq 2 "$(status_json | jq length)" "number of containers in the status with --select-label team --select-label tier=web"
end_phase

# --all selects every container, even one labelled execvisor.enable=false.
start_phase all
phase_container all-plain
phase_container all-disabled execvisor.enable=false
phase_container all-team-b team=b
start_supervisor --all
check_selected all-plain
check_selected all-disabled
check_selected all-team-b
phase_container all-plain-late
check_selected all-plain-late
end_phase
