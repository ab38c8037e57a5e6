#!/usr/bin/env bash
# Start or stop the private Docker engine that the integration tests share.
#
# Usage: dockerd.sh start DIR
#        dockerd.sh stop DIR
#        dockerd.sh restart DIR [--down SECONDS] [DOCKERD_OPTION...]
#
# start runs dockerd with its socket at DIR/docker.sock, its data root, exec
# root, pid files and log (DIR/dockerd.log) all under DIR, with no bridge and no
# iptables rules, waits until `docker info` succeeds and imports the test image. stop ends
# that dockerd and the containerd it spawned, by the pids that start recorded,
# and removes DIR's data and exec roots (the log stays).
#
# restart stops the dockerd that start recorded with SIGTERM, as a host's
# service manager would, and keeps DIR's data and exec roots. It waits SECONDS
# (default 0) with no engine running, then starts dockerd again with the
# arguments of start followed by the given DOCKERD_OPTIONs, such as
# --live-restore. With no option, the arguments are exactly those of start.
# Unless the dockerd that stops runs with --live-restore, its containers stop
# with it.
#
# When EXECVISOR_TEST_DOCKER_SOCKET names the socket of a running engine, that
# engine is used: start only imports the test image into it, stop does nothing,
# and restart does nothing and exits with 77, the status of a skipped test.

set -euo pipefail

readonly TEST_IMAGE=execvisor-test-busybox:latest
readonly BUSYBOX=/bin/busybox
readonly START_TIMEOUT=60
readonly STOP_TIMEOUT=30
# DIR/exec/containerd/containerd.sock.ttrpc must fit in a unix socket address
# (108 bytes with the terminating NUL), so DIR is kept well below that.
readonly DIR_MAX_LENGTH=64

log() {
  printf 'dockerd.sh: %s\n' "$*" >&2
}

die() {
  printf 'dockerd.sh: error: %s\n' "$*" >&2
  exit 1
}

# The Debian client (/usr/bin/docker) matches the Debian dockerd, so it comes
# first. EXECVISOR_TEST_DOCKER_CLI overrides the choice.
find_docker_cli() {
  if [[ -n ${EXECVISOR_TEST_DOCKER_CLI-} ]]; then
    printf '%s\n' "$EXECVISOR_TEST_DOCKER_CLI"
  elif [[ -x /usr/bin/docker ]]; then
    printf '%s\n' /usr/bin/docker
  elif command -v docker >/dev/null; then
    command -v docker
  else
    die "the docker client is missing; install docker.io (scripts/setup does)"
  fi
}

docker_at() {
  local socket=$1
  shift
  "$docker_cli" -H "unix://$socket" "$@"
}

# Return whether PID runs and is not a zombie.
pid_running() {
  local pid=$1 state

  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# Return whether PID runs a command line that contains every given string, so
# that a pid recorded earlier and since reused by another program is left alone.
pid_runs() {
  local pid=$1 cmdline word
  shift

  pid_running "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for word in "$@"; do
    [[ $cmdline == *"$word"* ]] || return 1
  done
}

# Wait up to TIMEOUT seconds for PID to end. Returns 1 if it still runs.
wait_pid_exit() {
  local pid=$1 timeout=$2 tries

  tries=$((timeout * 10))
  while pid_running "$pid"; do
    ((tries-- > 0)) || return 1
    sleep 0.1
  done
}

# Send SIGTERM to PID, wait up to TIMEOUT seconds, then SIGKILL it. WHAT names it in messages.
terminate_pid() {
  local pid=$1 timeout=$2 what=$3

  kill -TERM "$pid" 2>/dev/null || return 0
  if wait_pid_exit "$pid" "$timeout"; then
    return 0
  fi

  log "$what (pid $pid) still runs ${timeout} s after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_pid_exit "$pid" 10 || die "$what (pid $pid) survived SIGKILL"
}

print_log_tail() {
  local file=$1

  if [[ -s $file ]]; then
    log "last lines of $file:"
    tail -n 40 "$file" >&2
  fi
}

# The test image: /bin/busybox of busybox-static with a link for every applet,
# an /etc/passwd with root and nobody, and /tmp. Its Comment holds the SHA-256
# of the busybox binary, so an image that is already current is not imported again.
import_image() {
  local socket=$1 work_dir=$2 checksum current root applet

  [[ -x $BUSYBOX ]] || die "$BUSYBOX is missing; install busybox-static (scripts/setup does)"
  if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
    die "$BUSYBOX is linked dynamically and would not run in the test image; install busybox-static"
  fi

  checksum=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
  current=$(docker_at "$socket" image inspect --format '{{.Comment}}' "$TEST_IMAGE" 2>/dev/null || true)
  if [[ $current == "busybox sha256 $checksum" ]]; then
    log "image $TEST_IMAGE is current"
    return 0
  fi

  root=$(mktemp -d "$work_dir/image.XXXXXX")
  chmod 0755 "$root"
  install -D -m 0755 "$BUSYBOX" "$root/bin/busybox"
  while read -r applet; do
    if [[ ! -e $root/$applet ]]; then
      mkdir -p "$root/$(dirname "$applet")"
      ln -s /bin/busybox "$root/$applet"
    fi
  done < <("$BUSYBOX" --list-full)
  install -d -m 0755 "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  install -d -m 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

  log "importing $TEST_IMAGE"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker_at "$socket" import \
      --message "busybox sha256 $checksum" \
      --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["sh"]' \
      - "$TEST_IMAGE" >/dev/null
  rm -rf "$root"

  # One container run proves that the engine, containerd and runc work
  # together, so that a broken engine fails here with its log and not in every test.
  if ! docker_at "$socket" run --rm --network none "$TEST_IMAGE" true; then
    die "the engine at $socket could not run a container from $TEST_IMAGE"
  fi
}

# launch_dockerd DIR [DOCKERD_OPTION...]
# Run dockerd on DIR with the given options after the standard ones, record its
# pid and its containerd's, and wait until it responds.
launch_dockerd() {
  local dir=$1 pid
  shift

  # setsid keeps dockerd out of the caller's session, so that it outlives the
  # ctest step that started it and a terminal's Ctrl-C does not reach it.
  setsid dockerd \
    -H "unix://$dir/docker.sock" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" \
    --bridge=none \
    --iptables=false \
    --ip6tables=false \
    "$@" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$dir/dockerd.started-pid"
  log "started dockerd (pid $pid) on unix://$dir/docker.sock${*:+ with $*}"

  local deadline=$((SECONDS + START_TIMEOUT))
  until docker_at "$dir/docker.sock" info >/dev/null 2>&1; do
    if ! pid_running "$pid"; then
      print_log_tail "$dir/dockerd.log"
      die "dockerd (pid $pid) exited during start-up; see $dir/dockerd.log"
    fi
    if ((SECONDS >= deadline)); then
      print_log_tail "$dir/dockerd.log"
      stop_engine "$dir"
      die "dockerd (pid $pid) did not respond on $dir/docker.sock within ${START_TIMEOUT} s; see $dir/dockerd.log"
    fi
    sleep 0.1
  done

  record_containerd "$dir"
}

start_engine() {
  local dir=$1

  command -v dockerd >/dev/null || die "dockerd is missing; install docker.io (scripts/setup does)"
  install -d -m 0700 "$dir"

  if [[ -f $dir/dockerd.started-pid ]]; then
    log "a dockerd recorded in $dir is left from an earlier run; stopping it first"
    stop_engine "$dir"
    install -d -m 0700 "$dir"
  fi
  if [[ -S $dir/docker.sock ]] && docker_at "$dir/docker.sock" version >/dev/null 2>&1; then
    die "an engine that this script did not start listens on $dir/docker.sock; stop it or choose another directory"
  fi
  rm -f "$dir/docker.sock"

  : >"$dir/dockerd.log"
  launch_dockerd "$dir"
  import_image "$dir/docker.sock" "$dir"
  log "engine ready: $(docker_at "$dir/docker.sock" version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
}

# dockerd 20.10 spawns its own containerd under the exec root when none is
# configured. Its pid is recorded so that stop can end it if it outlives dockerd.
record_containerd() {
  local dir=$1 pid

  pid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && pid_runs "$pid" containerd "$dir/exec/"; then
    printf '%s\n' "$pid" >"$dir/containerd.started-pid"
  else
    log "no containerd of this engine found (dockerd may be using a system containerd)"
  fi
}

# Print the pids of this engine's containerd shims. A shim is detached from
# containerd, but its command line names this engine's containerd socket.
find_shims() {
  local dir=$1 pid entry

  for entry in /proc/[0-9]*; do
    pid=${entry#/proc/}
    if pid_runs "$pid" containerd-shim "-address $dir/exec/containerd/containerd.sock"; then
      printf '%s\n' "$pid"
    fi
  done
}

# Unmount what is left mounted below DIR, deepest first.
unmount_below() {
  local dir=$1 target

  while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null ||
      log "could not unmount $target"
  done < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r)
}

stop_engine() {
  local dir=$1 pid containerd_pid shim

  pid=$(cat "$dir/dockerd.started-pid" 2>/dev/null || true)
  containerd_pid=$(cat "$dir/containerd.started-pid" 2>/dev/null || true)
  if [[ -z $pid ]]; then
    log "no dockerd recorded in $dir; nothing to stop"
    return 0
  fi

  if pid_runs "$pid" dockerd "unix://$dir/docker.sock"; then
    # Removing the containers first ends their shims while containerd still runs.
    local containers
    containers=$(timeout 60 "$docker_cli" -H "unix://$dir/docker.sock" ps -aq 2>/dev/null || true)
    if [[ -n $containers ]]; then
      # shellcheck disable=SC2086 # one container id per word
      timeout 60 "$docker_cli" -H "unix://$dir/docker.sock" rm -f $containers >/dev/null 2>&1 ||
        log "could not remove every container; dockerd stops the rest"
    fi

    log "stopping dockerd (pid $pid)"
    terminate_pid "$pid" "$STOP_TIMEOUT" dockerd
  else
    log "dockerd (pid $pid) recorded in $dir no longer runs"
  fi

  if [[ -n $containerd_pid ]] && pid_runs "$containerd_pid" containerd "$dir/exec/"; then
    if ! wait_pid_exit "$containerd_pid" 10; then
      log "containerd (pid $containerd_pid) outlived dockerd; stopping it"
      terminate_pid "$containerd_pid" 10 containerd
    fi
  fi

  for shim in $(find_shims "$dir"); do
    log "stopping leftover containerd shim (pid $shim)"
    terminate_pid "$shim" 10 containerd-shim
  done

  unmount_below "$dir"
  rm -rf --one-file-system "$dir/data" "$dir/exec"
  rm -f "$dir/dockerd.started-pid" "$dir/containerd.started-pid" "$dir/docker.sock" "$dir/docker.pid"
  log "stopped; the log stays in $dir/dockerd.log"
}

# restart_engine DIR [--down SECONDS] [DOCKERD_OPTION...]
# Unlike stop_engine, this removes no container and no data: the engine comes
# back with the containers it keeps across a restart.
restart_engine() {
  local dir=$1 down=0 pid containerd_pid
  shift

  if [[ ${1-} == --down ]]; then
    [[ ${2-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--down takes a number of seconds, not '${2-}'"
    down=$2
    shift 2
  fi

  pid=$(cat "$dir/dockerd.started-pid" 2>/dev/null || true)
  containerd_pid=$(cat "$dir/containerd.started-pid" 2>/dev/null || true)
  if [[ -z $pid ]] || ! pid_runs "$pid" dockerd "unix://$dir/docker.sock"; then
    die "no running dockerd recorded in $dir; start one with '$0 start $dir'"
  fi

  # dockerd stops each container it does not keep with its stop timeout
  # (10 s by default) before it exits, so this waits longer than stop does.
  log "stopping dockerd (pid $pid) for a restart"
  terminate_pid "$pid" $((STOP_TIMEOUT * 2)) dockerd
  if [[ -n $containerd_pid ]] && pid_runs "$containerd_pid" containerd "$dir/exec/"; then
    if ! wait_pid_exit "$containerd_pid" 10; then
      log "containerd (pid $containerd_pid) outlived dockerd; stopping it"
      terminate_pid "$containerd_pid" 10 containerd
    fi
  fi
  rm -f "$dir/dockerd.started-pid" "$dir/containerd.started-pid"

  if [[ $down != 0 ]]; then
    log "leaving the engine down for $down s"
    sleep "$down"
  fi

  launch_dockerd "$dir" "$@"
  log "engine back: $(docker_at "$dir/docker.sock" version --format 'server {{.Server.Version}}')"
}

main() {
  (($# >= 2)) || die "usage: $0 start|stop DIR, or $0 restart DIR [--down SECONDS] [DOCKERD_OPTION...]"
  local action=$1 dir
  if [[ $action != restart ]] && (($# != 2)); then
    die "usage: $0 $action DIR"
  fi

  [[ $EUID -eq 0 ]] || die "dockerd.sh must run as root, because dockerd does"
  docker_cli=$(find_docker_cli)

  if [[ -n ${EXECVISOR_TEST_DOCKER_SOCKET-} ]]; then
    local socket=$EXECVISOR_TEST_DOCKER_SOCKET
    case $action in
      start)
        docker_at "$socket" info >/dev/null || die "the engine at EXECVISOR_TEST_DOCKER_SOCKET=$socket does not respond"
        install -d -m 0700 "$2"
        import_image "$socket" "$2"
        log "using the engine at $socket"
        ;;
      stop)
        log "the engine at $socket was given, not started here; leaving it running"
        ;;
      restart)
        log "the engine at $socket was given, not started here; not restarting it"
        exit 77
        ;;
      *) die "unknown action '$action'; expected start, stop or restart" ;;
    esac
    return 0
  fi

  dir=$(realpath -m "$2")
  if ((${#dir} > DIR_MAX_LENGTH)); then
    die "$dir is longer than $DIR_MAX_LENGTH characters, too long for the engine's unix sockets below it; use a shorter directory"
  fi

  case $action in
    start) start_engine "$dir" ;;
    stop) stop_engine "$dir" ;;
    restart) restart_engine "$dir" "${@:3}" ;;
    *) die "unknown action '$action'; expected start, stop or restart" ;;
  esac
}

main "$@"
