#!/usr/bin/env bash
# The test set-up works: the engine answers, the test image runs a container
# with no network, and the execvisor binary reports its version.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server_version=$(docker version --format '{{.Server.Version}}')
[[ -n $server_version ]] || fail "the engine at $TEST_DOCKER_SOCKET reported no server version"
note "engine $server_version at $TEST_DOCKER_SOCKET"

id=$(run_container smoke-busybox -- sh -c 'echo hello from the test image; busybox | head -n 1; ls /sys/class/net')
exit_code=$(docker wait "$id")
assert_eq 0 "$exit_code" "exit code of the busybox container"

output=$(docker logs "$id" 2>&1)
assert_contains "$output" "hello from the test image" "container output"
assert_contains "$output" "BusyBox v" "container output"
# With --network none the container has a loopback interface only.
assert_eq "hello from the test image" "$(head -n 1 <<<"$output")" "first output line"
assert_eq "lo" "$(tail -n 1 <<<"$output")" "network interfaces of the container"

labels=$(docker inspect --format '{{index .Config.Labels "execvisor.test"}}' "$id")
assert_eq "$TEST_NAME" "$labels" "execvisor.test label of the container"

version_output=$("$EXECVISOR_BIN" version)
if [[ ! $version_output =~ [0-9]+\.[0-9]+\.[0-9]+ ]]; then
  fail "'execvisor version' printed no version number; it printed: '$version_output'"
fi
if [[ -n ${EXECVISOR_EXPECTED_VERSION-} ]]; then
  assert_contains "$version_output" "$EXECVISOR_EXPECTED_VERSION" "output of 'execvisor version'"
fi
