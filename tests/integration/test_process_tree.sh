#!/usr/bin/env bash
# The agent's process tree is cleaned up when the agent exits. execvisor-init
# reaps the agent's zombies and ends the processes it orphaned, so nothing is
# left to the container's own init, here a `sleep` that never reaps. The
# agent's cgroup is empty before the agent is restarted. --agent-pids-max and
# --agent-memory-max set the limits of the agent's cgroup.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly ORPHANS=3
readonly ZOMBIES=2
readonly PIDS_MAX=20
readonly MEMORY_MAX_BYTES=$((64 * 1024 * 1024))

# Print the pids of CONTAINER's namespace that are in state STATE.
pids_in_state() {
  local container=$1 state=$2 pid

  for pid in $(container_namespace_pids "$container"); do
    if [[ $(process_state "$pid" 2>/dev/null) == "$state" ]]; then
      printf '%s\n' "$pid"
    fi
  done
}

# Print the pids of CONTAINER's namespace whose parent is PARENT.
children_of() {
  local container=$1 parent=$2 pid

  for pid in $(container_namespace_pids "$container"); do
    if [[ $(process_ppid "$pid" 2>/dev/null) == "$parent" ]]; then
      printf '%s\n' "$pid"
    fi
  done
}

# The agent of CONTAINER (host pid AGENT, below execvisor-init INIT) has
# forked its orphans and zombies: ORPHANS sessions below INIT besides the
# agent, ZOMBIES zombies below the agent.
tree_spawned() {
  local container=$1 init=$2 agent=$3 orphans zombies

  orphans=$(children_of "$container" "$init" | grep -vcx "$agent") || true
  zombies=0
  for pid in $(children_of "$container" "$agent"); do
    [[ $(process_state "$pid" 2>/dev/null) == Z ]] && zombies=$((zombies + 1))
  done
  ((orphans >= ORPHANS && zombies >= ZOMBIES))
}

agent_pending() {
  [[ $(agent_status_field "$1" LastStatus 2>/dev/null) == PENDING ]]
}

# Print the directory of CONTAINER's agent cgroup in the hierarchy that has
# the controller CONTROLLER (v1), or in the unified hierarchy (v2).
agent_cgroup_with() {
  local container=$1 controller=$2 dir

  for dir in $(container_cgroup_dirs "$container"); do
    if [[ -f $dir/$AGENT_CGROUP_NAME/$controller.max || -f $dir/$AGENT_CGROUP_NAME/$controller.limit_in_bytes ]]; then
      printf '%s\n' "$dir/$AGENT_CGROUP_NAME"
      return 0
    fi
  done
  return 1
}

# The restart delay leaves time to look at what the agent left behind before
# the next agent starts.
start_supervisor_synced --restart-backoff-min 4s --restart-backoff-max 4s \
  --agent-pids-max "$PIDS_MAX" --agent-memory-max 64M

# --- what the agent leaves behind -------------------------------------------------

# The container's init is a plain `sleep`: busybox sleep never calls wait(),
# so every orphan or zombie left to it would stay.
id=$(run_agent_container tree-orphans \
  "$(printf 'spawn-orphans=%s\nspawn-zombie-children=%s\nexit-after=2s\nexit-code=0' "$ORPHANS" "$ZOMBIES")" \
  -- sleep 1000)
container_init=$(container_pid "$id")
wait_agent_state "$id" RUNNING
agent=$(agent_status_field "$id" Pid)
agent_init=$(process_ppid "$agent")
[[ $(process_argv0 "$agent_init") == /ecs-execute-command-*/execvisor-init ]] ||
  fail "the agent's parent (pid $agent_init) is not execvisor-init: $(process_argv0 "$agent_init")"
assert_eq "$SUPERVISOR_PID" "$(process_ppid "$agent_init")" "parent of execvisor-init"

# The agent really forks its orphans and zombies: they are seen while it runs.
wait_for --timeout 2 tree_spawned "$id" "$agent_init" "$agent"
note "while the agent runs, the container holds: $(container_namespace_pids "$id" | tr '\n' ' ')"

# The agent exits after 2 s; the supervisor reports it PENDING until the restart.
wait_agent_state --timeout 10 "$id" PENDING
reason=$(agent_status_field "$id" Reason)
assert_contains "$reason" "exited with status 0" "Reason while the agent waits for its restart"

# Before the restart: no zombie, nothing left below the container's init, no
# process of the agent in the container, and an empty agent cgroup.
assert_eq "" "$(pids_in_state "$id" Z | tr '\n' ' ')" "zombies in the container after the agent exited"
assert_eq "" "$(children_of "$id" "$container_init" | tr '\n' ' ')" \
  "processes left to the container's init (pid $container_init) after the agent exited"
assert_eq "" "$(agent_tree_pids "$id" | tr '\n' ' ')" "agent processes in the container after the agent exited"
assert_eq "$container_init" "$(container_namespace_pids "$id" | tr '\n' ' ' | sed 's/ $//')" \
  "processes in the container's pid namespace after the agent exited (only its init)"
mapfile -t cgroup_dirs < <(container_cgroup_dirs "$id")
for dir in "${cgroup_dirs[@]}"; do
  if [[ -f $dir/$AGENT_CGROUP_NAME/cgroup.procs ]]; then
    assert_eq "" "$(tr '\n' ' ' <"$dir/$AGENT_CGROUP_NAME/cgroup.procs")" \
      "processes in the agent cgroup $dir/$AGENT_CGROUP_NAME before the restart"
  fi
done
agent_pending "$id" || fail "the agent was restarted before the checks ended; raise --restart-backoff-min"

# The restarted agent runs.
wait_agent_state --timeout 10 "$id" RUNNING "$agent"
restarted=$(agent_status_field "$id" Pid)
pid_running "$restarted" || fail "the restarted agent (pid $restarted) does not run"
assert_eq 1 "$(agent_status_field "$id" RestartCount)" "RestartCount after the first exit"
note "restarted agent: pid $restarted"

# --- cgroup limits --------------------------------------------------------------------

pids_dir=$(agent_cgroup_with "$id" pids) || fail "no agent cgroup with a pids controller for container tree-orphans"
assert_eq "$PIDS_MAX" "$(cat "$pids_dir/pids.max")" "pids.max of $pids_dir"
memory_dir=$(agent_cgroup_with "$id" memory) || fail "no agent cgroup with a memory controller for container tree-orphans"
if [[ -f $memory_dir/memory.limit_in_bytes ]]; then
  assert_eq "$MEMORY_MAX_BYTES" "$(cat "$memory_dir/memory.limit_in_bytes")" "memory.limit_in_bytes of $memory_dir"
else
  assert_eq "$MEMORY_MAX_BYTES" "$(cat "$memory_dir/memory.max")" "memory.max of $memory_dir"
fi
# The container's own limits are not touched.
container_pids_dir=${pids_dir%/"$AGENT_CGROUP_NAME"}
assert_eq max "$(cat "$container_pids_dir/pids.max")" "pids.max of the container's own cgroup"

# The pids limit holds: an agent that tries to fork more than it allows is
# refused the extra processes.
greedy=$(run_agent_container tree-greedy 'spawn-orphans=30')
wait_agent_state "$greedy" RUNNING
wait_for --timeout 10 grep -q 'failed to spawn an orphan' "$TEST_LOG_DIR/.output/tree-greedy.log"
greedy_pids_dir=$(agent_cgroup_with "$greedy" pids) || fail "no agent cgroup with a pids controller for container tree-greedy"
current=$(cat "$greedy_pids_dir/pids.current")
note "tree-greedy: pids.current $current with pids.max $PIDS_MAX"
((current <= PIDS_MAX)) || fail "pids.current of tree-greedy's agent cgroup is $current, above pids.max $PIDS_MAX"

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
