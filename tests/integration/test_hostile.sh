#!/usr/bin/env bash
# Containers that work against the injection cannot reach the host.
# (a) A container root with CAP_SYS_ADMIN that remounts, writes, chmods,
#     unmounts and over-mounts its bundle view changes no host file and no
#     other container's view.
# (b) A /var/log that is a symlink out of the root, absolute or relative,
#     gets the log mount inside the container's root.
# (c) Planted /ecs-execute-command-* entries and a /var/log/amazon/ssm
#     symlink to /etc leave the host's /etc alone.
# (d) An image or a run with USER 1000 still gets the agent as uid 0.
# (e) A file in the way of the log mount stops the injection with a reason
#     and leaves no mount behind. A /var/log through /proc magic links
#     never reaches the host.
# (f) A container named like the supervisor's audit log in the log
#     directory still gets its agent, and the audit log stays out of reach.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly BUNDLE_FILES=(amazon-ssm-agent ssm-agent-worker ssm-session-worker execvisor-init
  configuration/amazon-ssm-agent.json configuration/seelog.xml certs/amazon-ssm-agent.crt)
readonly USER_IMAGE=execvisor-test-hostile-user:latest

# Names below / that no host should have; the symlinks of (b) aim at them.
readonly ESCAPE_ABSOLUTE=evt-escape-absolute-$$
readonly ESCAPE_RELATIVE=evt-escape-relative-$$
readonly ESCAPE_PROC_SELF=evt-escape-proc-self-$$
readonly ESCAPE_PROC_ROOT=evt-escape-proc-root-$$

# The attack, run inside the container as root with CAP_SYS_ADMIN. Every
# step may fail; its outcome is printed for the test's log.
# shellcheck disable=SC2016 # expanded by the container's shell
readonly ATTACK_SCRIPT='
dir=$1
try() {
  if "$@" >/dev/null 2>&1; then echo "succeeded: $*"; else echo "failed: $*"; fi
}
try mount -o remount,rw "$dir"
try mount -o remount,bind,rw "$dir"
try sh -c "echo overwritten >\"$dir/amazon-ssm-agent\""
try sh -c "echo appended >>\"$dir/configuration/amazon-ssm-agent.json\""
try sh -c "echo overwritten >\"$dir/certs/amazon-ssm-agent.crt\""
try touch "$dir/planted"
try chmod 0777 "$dir" "$dir/amazon-ssm-agent" "$dir/configuration/amazon-ssm-agent.json"
try chown 1000:1000 "$dir/ssm-agent-worker"
try rm -f "$dir/ssm-session-worker"
try mv "$dir/execvisor-init" "$dir/moved"
try ln -s /etc/passwd "$dir/link"
try mkdir -p /mnt/rebound
try mount --bind "$dir" /mnt/rebound
try mount -o remount,bind,rw /mnt/rebound
try sh -c "echo overwritten >/mnt/rebound/ssm-agent-worker"
try umount "$dir"
try mount -t tmpfs tmpfs "$dir"
try sh -c "echo overwritten >\"$dir/amazon-ssm-agent\""
try umount -l "$dir"
try umount -l "$dir"
try sh -c "echo overwritten >\"$dir/amazon-ssm-agent\""
'

# Return whether the agent of the container NAME has left PENDING.
agent_settled() {
  local state

  state=$(agent_field "$1" LastStatus)
  [[ $state == RUNNING || $state == STOPPED ]]
}

# Print the SHA-256 of every bundle file as read inside the container NAME.
bundle_checksums_inside() {
  local name=$1 bundle_dir

  bundle_dir=$(agent_bundle_dir "$(agent_field "$name" Pid)")
  docker exec "$name" sh -c 'cd "$1" && shift && sha256sum "$@"' sh "$bundle_dir" "${BUNDLE_FILES[@]}"
}

# Fail if a mount in the host's mount namespace shows the log directory of
# the container NAME: the log mount must exist only inside the container.
# A mount point shows the device and inode of the mounted directory, so a
# bind mount of the log directory anywhere on the host has its pair.
check_no_host_log_mount() {
  local name=$1 log_inode target

  log_inode=$(stat -c '%d:%i' "$TEST_LOG_DIR/$name")
  while IFS= read -r target; do
    # findmnt --raw writes blanks and other special bytes as \xNN.
    target=$(printf '%b' "$target")
    if [[ $(stat -c '%d:%i' "$target" 2>/dev/null) == "$log_inode" ]]; then
      fail "$name: the container's log directory $TEST_LOG_DIR/$name is mounted on the host at $target"
    fi
  done < <(findmnt -rn -o TARGET)
}

# check_log_mount_at NAME TARGET: the log mount of the container NAME is at
# TARGET inside its root and is the host's <log-dir>/NAME.
check_log_mount_at() {
  local name=$1 target=$2 init_pid entry

  init_pid=$(container_pid "$name")
  entry=$(mountinfo_entry "$(cat "/proc/$init_pid/mountinfo")" "$target")
  [[ -n $entry ]] || fail "$name: no mount at $target in the container; its mountinfo is:
$(cat "/proc/$init_pid/mountinfo")"
  assert_eq "$(stat -c '%d:%i' "$TEST_LOG_DIR/$name")" "$(stat -c '%d:%i' "/proc/$init_pid/root$target")" \
    "$name: device:inode of $target in the container against the host's $TEST_LOG_DIR/$name"
  wait_for agent_report "$name" >/dev/null
  check_no_host_log_mount "$name"
}

# The host's view of /etc: its entries and the mounts on or below it.
host_etc_fingerprint() {
  ls -A /etc
  findmnt -rn -o TARGET | grep -E '^/etc(/|$)' || true
}

make_bundle "$TEST_BUNDLE"
start_supervisor

# (a) A container root with CAP_SYS_ADMIN and no seccomp filter attacks its
# bundle view while a neighbour runs from the same bundle version.
run_container hostile-neighbour --label execvisor.enable=true >/dev/null
run_container hostile-admin --label execvisor.enable=true --cap-add SYS_ADMIN \
  --security-opt seccomp=unconfined >/dev/null
wait_for_agent hostile-neighbour >/dev/null
admin_pid=$(wait_for_agent hostile-admin)
admin_bundle_dir=$(agent_bundle_dir "$admin_pid")

fingerprint_before=$(tree_fingerprint "$TEST_BUNDLE" "$TEST_STATE_DIR/views")
neighbour_before=$(bundle_checksums_inside hostile-neighbour)
agent_checksum=$(sha256sum <"$EXECVISOR_TEST_AGENT" | cut -d' ' -f1)
assert_contains "$neighbour_before" "$agent_checksum  amazon-ssm-agent" "checksums of the neighbour's bundle before the attack"

attack_output=$(docker exec hostile-admin sh -c "$ATTACK_SCRIPT" sh "$admin_bundle_dir")
note "attack on $admin_bundle_dir:
$attack_output"

fingerprint_after=$(tree_fingerprint "$TEST_BUNDLE" "$TEST_STATE_DIR/views")
assert_eq "$fingerprint_before" "$fingerprint_after" \
  "contents, modes and owners of the host's bundle and state views after the attack"
assert_eq "$neighbour_before" "$(bundle_checksums_inside hostile-neighbour)" \
  "checksums of the neighbour's bundle after the attack"

# A container injected after the attack gets the original files, not a
# view that the attack could have changed.
run_container hostile-late --label execvisor.enable=true >/dev/null
wait_for_agent hostile-late >/dev/null
assert_eq "$neighbour_before" "$(bundle_checksums_inside hostile-late)" \
  "checksums of the bundle of a container injected after the attack"
assert_eq "$fingerprint_before" "$(tree_fingerprint "$TEST_BUNDLE" "$TEST_STATE_DIR/views")" \
  "contents, modes and owners of the host's bundle and state views after a later injection"

# (b) /var/log leads out of the root, by an absolute and by a relative
# symlink. Resolved inside the container's root, both end below its /.
[[ ! -e /$ESCAPE_ABSOLUTE && ! -e /$ESCAPE_RELATIVE ]] ||
  fail "/$ESCAPE_ABSOLUTE or /$ESCAPE_RELATIVE exists on the host before the test"
mkdir -p "$TEST_TMP/files-absolute/var" "$TEST_TMP/files-relative/var"
ln -s "/../../../$ESCAPE_ABSOLUTE" "$TEST_TMP/files-absolute/var/log"
ln -s "../../../../../../../../$ESCAPE_RELATIVE" "$TEST_TMP/files-relative/var/log"
run_container_with_files hostile-log-absolute "$TEST_TMP/files-absolute" --label execvisor.enable=true >/dev/null
run_container_with_files hostile-log-relative "$TEST_TMP/files-relative" --label execvisor.enable=true >/dev/null

wait_for_agent hostile-log-absolute >/dev/null
check_log_mount_at hostile-log-absolute "/$ESCAPE_ABSOLUTE/amazon/ssm"
wait_for_agent hostile-log-relative >/dev/null
check_log_mount_at hostile-log-relative "/$ESCAPE_RELATIVE/amazon/ssm"
[[ ! -e /$ESCAPE_ABSOLUTE ]] || fail "/$ESCAPE_ABSOLUTE was created on the host"
[[ ! -e /$ESCAPE_RELATIVE ]] || fail "/$ESCAPE_RELATIVE was created on the host"
[[ ! -e $TEST_LOG_DIR/$ESCAPE_ABSOLUTE && ! -e $TEST_LOG_DIR/$ESCAPE_RELATIVE ]] ||
  fail "an escape target was created in the host's log directory $TEST_LOG_DIR"

# (c) Entries planted where the supervisor works: fake bundle directories
# and a /var/log/amazon/ssm symlink to /etc.
etc_before=$(host_etc_fingerprint)
planted=$TEST_TMP/files-planted
mkdir -p "$planted/var/log/amazon" "$planted/ecs-execute-command-y"
ln -s /etc "$planted/var/log/amazon/ssm"
ln -s /etc "$planted/ecs-execute-command-x"
printf 'planted\n' >"$planted/ecs-execute-command-y/amazon-ssm-agent"
run_container_with_files hostile-planted "$planted" --label execvisor.enable=true >/dev/null
planted_pid=$(wait_for_agent hostile-planted)
planted_init=$(container_pid hostile-planted)

check_log_mount_at hostile-planted /etc
assert_eq "$etc_before" "$(host_etc_fingerprint)" "entries of and mounts on the host's /etc"
if compgen -G "/etc/test-agent-*.report" >/dev/null; then
  fail "the test agent's report landed in the host's /etc"
fi

planted_bundle_dir=$(agent_bundle_dir "$planted_pid")
if [[ $planted_bundle_dir == /ecs-execute-command-x || $planted_bundle_dir == /ecs-execute-command-y ]]; then
  fail "hostile-planted: the agent runs from the planted directory $planted_bundle_dir"
fi
assert_eq /etc "$(readlink "/proc/$planted_init/root/ecs-execute-command-x")" \
  "hostile-planted: target of the planted symlink /ecs-execute-command-x"
assert_eq planted "$(cat "/proc/$planted_init/root/ecs-execute-command-y/amazon-ssm-agent")" \
  "hostile-planted: content of the planted /ecs-execute-command-y/amazon-ssm-agent"

# (d) USER 1000 in the image, and --user 1000:1000 on the command line,
# with a working directory of the image's choice.
build_test_image "$USER_IMAGE" "FROM $TEST_IMAGE
USER 1000:1000
WORKDIR /tmp"
docker run --detach --network none --label "$TEST_LABEL" --label execvisor.enable=true \
  --name hostile-image-user "$USER_IMAGE" sleep 86400 >/dev/null
run_container hostile-run-user --label execvisor.enable=true --user 1000:1000 --workdir /tmp >/dev/null

for name in hostile-image-user hostile-run-user; do
  agent_pid=$(wait_for_agent "$name")
  init_pid=$(container_pid "$name")
  assert_eq "1000 1000 1000 1000" "$(status_line "$init_pid" Uid)" "$name: Uid line of the container's init (the test's premise)"
  assert_eq "0 0 0 0" "$(status_line "$agent_pid" Uid)" "$name: Uid line of the agent"
  assert_eq "0 0 0 0" "$(status_line "$agent_pid" Gid)" "$name: Gid line of the agent"
  assert_eq "$(stat -L -c '%d:%i' "/proc/$init_pid/root/.")" "$(stat -L -c '%d:%i' "/proc/$agent_pid/cwd/.")" \
    "$name: the agent's working directory against the container's root (the image's WORKDIR must not apply)"
  wait_for agent_report "$name" >/dev/null
  assert_contains "$(report_section "$(agent_report "$name")" ids)" "uid=0 euid=0 gid=0 egid=0" \
    "$name: ids section of the agent's report"
done

# (e) Entries in the way of the log mount. A regular file at
# /var/log/amazon/ssm stops the injection with a reason, and the bundle mount
# made before it is undone.
mkdir -p "$TEST_TMP/files-file/var/log/amazon"
printf 'in the way\n' >"$TEST_TMP/files-file/var/log/amazon/ssm"
run_container_with_files hostile-way-file "$TEST_TMP/files-file" --label execvisor.enable=true >/dev/null
wait_for agent_has_status hostile-way-file STOPPED
assert_contains "$(agent_field hostile-way-file Reason)" /var/log/amazon/ssm "hostile-way-file: Reason in the status"
assert_eq 0 "$(agent_field hostile-way-file Pid)" "hostile-way-file: Pid in the status"
way_mountinfo=$(cat "/proc/$(container_pid hostile-way-file)/mountinfo")
assert_not_contains "$way_mountinfo" /ecs-execute-command- "hostile-way-file: mountinfo of the container after the failed injection"
assert_not_contains "$way_mountinfo" /amazon/ssm "hostile-way-file: mountinfo of the container after the failed injection"
assert_eq "in the way" "$(cat "/proc/$(container_pid hostile-way-file)/root/var/log/amazon/ssm")" \
  "hostile-way-file: content of the file at /var/log/amazon/ssm"
check_no_host_log_mount hostile-way-file

# A /var/log through the /proc magic links of the container. Whether the
# supervisor rejects the path or resolves it inside the container's root,
# the log mount must not reach the host: from the supervisor's side,
# /proc/self/root is the host's root.
[[ ! -e /$ESCAPE_PROC_SELF && ! -e /$ESCAPE_PROC_ROOT ]] ||
  fail "/$ESCAPE_PROC_SELF or /$ESCAPE_PROC_ROOT exists on the host before the test"
mkdir -p "$TEST_TMP/files-proc-self/var" "$TEST_TMP/files-proc-root/var"
ln -s "/proc/self/root/$ESCAPE_PROC_SELF" "$TEST_TMP/files-proc-self/var/log"
ln -s "/proc/1/root/../../../$ESCAPE_PROC_ROOT" "$TEST_TMP/files-proc-root/var/log"
for case in proc-self proc-root; do
  run_container_with_files "hostile-way-$case" "$TEST_TMP/files-$case" --label execvisor.enable=true >/dev/null
done
for case in proc-self proc-root; do
  name=hostile-way-$case
  wait_for agent_settled "$name"
  state=$(agent_field "$name" LastStatus)
  note "$name: $state $(agent_field "$name" Reason)"
  if [[ $state == RUNNING ]]; then
    init_pid=$(container_pid "$name")
    log_target=$(awk '$5 ~ /\/amazon\/ssm$/ { print $5 }' "/proc/$init_pid/mountinfo" | tail -n 1)
    [[ -n $log_target ]] || fail "$name: the agent runs, but the container has no mount at */amazon/ssm"
    check_log_mount_at "$name" "$log_target"
  else
    assert_contains "$(agent_field "$name" Reason)" /var/log/amazon/ssm "$name: Reason in the status"
    assert_not_contains "$(cat "/proc/$(container_pid "$name")/mountinfo")" /ecs-execute-command- \
      "$name: mountinfo of the container after the failed injection"
  fi
  check_no_host_log_mount "$name"
done
[[ ! -e /$ESCAPE_PROC_SELF ]] || fail "/$ESCAPE_PROC_SELF was created on the host"
[[ ! -e /$ESCAPE_PROC_ROOT ]] || fail "/$ESCAPE_PROC_ROOT was created on the host"
pid_running "$SUPERVISOR_PID" || fail "the supervisor exited after the injections into hostile-way-*"

# (f) Docker accepts "audit.log" as a container name, and by default the
# supervisor's audit log is the file audit.log in the same log directory.
audit_log=$TEST_LOG_DIR/audit.log
run_container audit.log --label execvisor.enable=true >/dev/null
wait_for agent_settled audit.log
assert_eq RUNNING "$(agent_field audit.log LastStatus)" \
  "audit.log: LastStatus in the status (Reason: '$(agent_field audit.log Reason)')"
[[ -f $audit_log ]] || fail "the audit log $audit_log is no longer a regular file"
if ! jq -e . "$audit_log" >/dev/null; then
  fail "the audit log $audit_log is no longer JSON lines after the container audit.log started"
fi
audit_log_inode=$(stat -c '%d:%i' "$audit_log")
inside_inode=$(docker exec audit.log stat -c '%d:%i' /var/log/amazon/ssm)
[[ $inside_inode != "$audit_log_inode" ]] || fail "the container audit.log has the host's audit log at /var/log/amazon/ssm"

remove_test_images
