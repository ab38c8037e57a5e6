#!/usr/bin/env bash
# The task metadata endpoint. It checks the container and task documents
# field by field, for containers with ECS labels and without, and id prefixes.
# It checks the JSON errors for unknown ids, ambiguous prefixes, unknown paths
# and other methods, then the metrics and /v1/agents against
# `execvisor status --json`. A second listener on loopback TCP returns the
# same, and a TCP listener on another address is rejected at start. Under 200
# parallel clients a new container still gets its agent. Once no daemon runs,
# `execvisor status` reports that no daemon is running.

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly AGENT_VERSION=3.2.0.0
readonly CLUSTER=execvisor-test-cluster
readonly TASK_ARN=arn:aws:ecs:us-east-1:123456789012:task/$CLUSTER/4d2f8e6a0b1c4e5f9a7b3c2d1e0f9a8b
readonly OTHER_TASK_ARN=arn:aws:ecs:us-east-1:123456789012:task/$CLUSTER/0a1b2c3d4e5f60718293a4b5c6d7e8f9
readonly TASK_FAMILY=execvisor-test-family
readonly TASK_REVISION=7
# Load: LOAD_CLIENTS requests a round, LOAD_PARALLEL of them at a time.
readonly LOAD_CLIENTS=200
readonly LOAD_PARALLEL=50
readonly LOAD_MAX_ROUNDS=100
# How long a container started under load may take to get a running agent.
readonly LOAD_INJECTION_MAX_MS=5000

# ecs_labels ARN CONTAINER_NAME: print the docker options of the labels that
# the ECS agent puts on a task's container.
ecs_labels() {
  printf '%s\n' --label "com.amazonaws.ecs.task-arn=$1" --label "com.amazonaws.ecs.container-name=$2" \
    --label "com.amazonaws.ecs.cluster=$CLUSTER" \
    --label "com.amazonaws.ecs.task-definition-family=$TASK_FAMILY" \
    --label "com.amazonaws.ecs.task-definition-version=$TASK_REVISION"
}

# docker_time_ms CONTAINER FORMAT: print a time of docker inspect (such as
# {{.Created}}) in milliseconds since the epoch.
docker_time_ms() {
  time_ms "$(docker inspect --format "$2" "$1")"
}

# assert_same_ms WHAT EXPECTED_MS ACTUAL_MS: the two times are at most 1 ms apart,
# because the endpoint gives milliseconds where Docker gives nanoseconds.
assert_same_ms() {
  local what=$1 expected=$2 actual=$3 difference

  difference=$((actual - expected))
  if ((difference < -1 || difference > 1)); then
    fail "$what: expected $expected ms since the epoch (from docker inspect), got $actual ms"
  fi
}

# check_container_document ID DOCKER_NAME EXPECTED_NAME: GET /v4/ID returns
# the container document of the container, field by field.
check_container_document() {
  local id=$1 docker_name=$2 expected_name=$3 document agent pid key

  document=$(endpoint_get_json "/v4/$id")
  for key in DockerId Name DockerName Image Labels KnownStatus CreatedAt StartedAt ManagedAgents; do
    jq -e --arg key "$key" 'has($key)' >/dev/null <<<"$document" ||
      fail "the document of $docker_name has no $key: $document"
  done

  assert_eq "$id" "$(jq -r .DockerId <<<"$document")" "DockerId of $docker_name"
  assert_eq "$expected_name" "$(jq -r .Name <<<"$document")" "Name of $docker_name"
  assert_eq "$docker_name" "$(jq -r .DockerName <<<"$document")" "DockerName of $docker_name"
  assert_eq "$(docker inspect --format '{{.Config.Image}}' "$id")" "$(jq -r .Image <<<"$document")" "Image of $docker_name"
  assert_eq "$(docker inspect --format '{{json .Config.Labels}}' "$id" | jq -S -c .)" \
    "$(jq -S -c .Labels <<<"$document")" "Labels of $docker_name"
  assert_eq RUNNING "$(jq -r .KnownStatus <<<"$document")" "KnownStatus of $docker_name"

  assert_rfc3339_utc "$(jq -r .CreatedAt <<<"$document")" "CreatedAt of $docker_name"
  assert_rfc3339_utc "$(jq -r .StartedAt <<<"$document")" "StartedAt of $docker_name"
  assert_same_ms "CreatedAt of $docker_name" "$(docker_time_ms "$id" '{{.Created}}')" \
    "$(time_ms "$(jq -r .CreatedAt <<<"$document")")"
  assert_same_ms "StartedAt of $docker_name" "$(docker_time_ms "$id" '{{.State.StartedAt}}')" \
    "$(time_ms "$(jq -r .StartedAt <<<"$document")")"

  assert_eq 1 "$(jq '.ManagedAgents | length' <<<"$document")" "number of ManagedAgents of $docker_name"
  agent=$(jq -c '.ManagedAgents[0]' <<<"$document")
  assert_eq ExecuteCommandAgent "$(jq -r .Name <<<"$agent")" "ManagedAgents[0].Name of $docker_name"
  assert_eq RUNNING "$(jq -r .LastStatus <<<"$agent")" "ManagedAgents[0].LastStatus of $docker_name"
  assert_rfc3339_utc "$(jq -r .LastStartedAt <<<"$agent")" "ManagedAgents[0].LastStartedAt of $docker_name"
  if (($(time_ms "$(jq -r .LastStartedAt <<<"$agent")") < $(time_ms "$(jq -r .StartedAt <<<"$document")"))); then
    fail "the agent of $docker_name started ($(jq -r .LastStartedAt <<<"$agent")) before its container ($(jq -r .StartedAt <<<"$document"))"
  fi
  assert_eq false "$(jq 'has("Reason")' <<<"$agent")" "ManagedAgents[0] of $docker_name has a Reason while the agent runs ($agent)"
  assert_eq 0 "$(jq -r .RestartCount <<<"$agent")" "ManagedAgents[0].RestartCount of $docker_name"
  assert_eq "$AGENT_VERSION" "$(jq -r .Version <<<"$agent")" "ManagedAgents[0].Version of $docker_name"

  pid=$(jq -r .Pid <<<"$agent")
  assert_eq "$(agent_status_field "$id" Pid)" "$pid" "ManagedAgents[0].Pid of $docker_name against execvisor status"
  pid_running "$pid" || fail "ManagedAgents[0].Pid $pid of $docker_name does not run"
  if [[ $(process_argv0 "$pid") != */amazon-ssm-agent ]]; then
    fail "ManagedAgents[0].Pid $pid of $docker_name runs '$(process_argv0 "$pid")', not the agent"
  fi
}

# Print the DockerIds of a task document's Containers, sorted, on one line.
task_member_ids() {
  jq -r '[.Containers[].DockerId] | sort | join(" ")' <<<"$1"
}

sorted_ids() {
  printf '%s\n' "$@" | sort | paste -sd ' '
}

# Print a character that starts at least two of the given ids, or nothing.
shared_first_character() {
  printf '%s\n' "$@" | cut -c1 | sort | uniq -d | head -n 1
}

# The load: rounds of LOAD_CLIENTS GETs of /v1/agents, LOAD_PARALLEL at a
# time, until the file STOP exists. Each response's status is one line of CODES.
run_load() {
  local stop=$1 codes=$2 round

  for ((round = 0; round < LOAD_MAX_ROUNDS; round++)); do
    [[ -e $stop ]] && return 0
    seq "$LOAD_CLIENTS" | xargs -P "$LOAD_PARALLEL" -I{} \
      curl --silent --max-time 10 --output /dev/null --write-out '%{http_code}\n' \
      --unix-socket "$(endpoint_socket)" http://localhost/v1/agents >>"$codes"
  done
}

line_count_at_least() {
  [[ -f $1 ]] && (($(wc -l <"$1") >= $2))
}

# --- a TCP listener on any but a loopback address is rejected at start ------

rejected_port=$(free_tcp_port)
for address in "tcp:0.0.0.0:$rejected_port" "tcp:10.0.0.1:$rejected_port"; do
  status=0
  output=$(timeout 10 "$EXECVISOR_BIN" run --docker-socket "$TEST_DOCKER_SOCKET" \
    --bundle "$TEST_TMP/no-bundle" --state-dir "$TEST_TMP/no-state" --log-dir "$TEST_TMP/no-log" \
    --listen "$address" </dev/null 2>&1) || status=$?
  assert_eq 2 "$status" "exit status of 'execvisor run --listen $address' (output: $output)"
  assert_contains "$output" "$address" "message for --listen $address"
  assert_contains "$output" "loopback" "message for --listen $address"
done
[[ ! -e $TEST_TMP/no-state ]] || fail "a rejected --listen created the state directory $TEST_TMP/no-state"

# --- documents ------------------------------------------------------------------

tcp_port=$(free_tcp_port)
tcp_listener=tcp:127.0.0.1:$tcp_port
start_supervisor_synced "${OWN_CONTAINERS_SELECTION[@]}" \
  --listen "unix:$(endpoint_socket)" --listen "$tcp_listener"

mapfile -t app_labels < <(ecs_labels "$TASK_ARN" app)
mapfile -t sidecar_labels < <(ecs_labels "$TASK_ARN" sidecar)
mapfile -t other_labels < <(ecs_labels "$OTHER_TASK_ARN" app)
app=$(run_agent_container ep-app '' "${app_labels[@]}")
sidecar=$(run_agent_container ep-sidecar '' "${sidecar_labels[@]}")
other_task=$(run_agent_container ep-other-task '' "${other_labels[@]}")
plain=$(run_agent_container ep-plain '')
# In the same task, but not selected: no agent, and not in the task document.
unselected=$(run_container ep-unselected "${app_labels[@]}")
for id in "$app" "$sidecar" "$other_task" "$plain"; do
  wait_agent_state "$id" RUNNING
done

check_container_document "$app" ep-app app
check_container_document "$sidecar" ep-sidecar sidecar
check_container_document "$plain" ep-plain ep-plain

# A unique prefix of 12 characters gives the same documents as the full id.
assert_eq "$(endpoint_get_json "/v4/$app" | jq -S -c .)" "$(endpoint_get_json "/v4/${app:0:12}" | jq -S -c .)" \
  "GET /v4/${app:0:12} against GET /v4/<full id>"
assert_eq "$(endpoint_get_json "/v4/$app/task" | jq -S -c .)" "$(endpoint_get_json "/v4/${app:0:12}/task" | jq -S -c .)" \
  "GET /v4/${app:0:12}/task against GET /v4/<full id>/task"

# The task of app and sidecar lists both, whichever of them is requested.
for id in "$app" "$sidecar"; do
  task=$(endpoint_get_json "/v4/$id/task")
  assert_eq "$TASK_ARN" "$(jq -r .TaskARN <<<"$task")" "TaskARN of the task of ${id:0:12}"
  assert_eq "$CLUSTER" "$(jq -r .Cluster <<<"$task")" "Cluster of the task of ${id:0:12}"
  assert_eq "$TASK_FAMILY" "$(jq -r .Family <<<"$task")" "Family of the task of ${id:0:12}"
  assert_eq "$TASK_REVISION" "$(jq -r .Revision <<<"$task")" "Revision of the task of ${id:0:12}"
  assert_eq RUNNING "$(jq -r .KnownStatus <<<"$task")" "KnownStatus of the task of ${id:0:12}"
  assert_eq "$(sorted_ids "$app" "$sidecar")" "$(task_member_ids "$task")" \
    "DockerIds of the Containers of the task of ${id:0:12} (ep-unselected ${unselected:0:12} and ep-other-task ${other_task:0:12} must not be there)"
  assert_eq app "$(jq -r --arg id "$app" '.Containers[] | select(.DockerId == $id) | .Name' <<<"$task")" \
    "Name of ep-app in the task document"
  assert_eq sidecar "$(jq -r --arg id "$sidecar" '.Containers[] | select(.DockerId == $id) | .Name' <<<"$task")" \
    "Name of ep-sidecar in the task document"
  for member in "$app" "$sidecar"; do
    assert_eq "$(endpoint_get_json "/v4/$member" | jq -S -c .)" \
      "$(jq -S -c --arg id "$member" '.Containers[] | select(.DockerId == $id)' <<<"$task")" \
      "entry of ${member:0:12} in the task document against its container document"
  done
done

other=$(endpoint_get_json "/v4/$other_task/task")
assert_eq "$OTHER_TASK_ARN" "$(jq -r .TaskARN <<<"$other")" "TaskARN of the other task"
assert_eq "$other_task" "$(task_member_ids "$other")" "DockerIds of the Containers of the other task"

# A container without a task ARN is alone in its task, which has no TaskARN.
task=$(endpoint_get_json "/v4/$plain/task")
assert_eq false "$(jq 'has("TaskARN")' <<<"$task")" "the task of ep-plain has a TaskARN ($task)"
assert_eq RUNNING "$(jq -r .KnownStatus <<<"$task")" "KnownStatus of the task of ep-plain"
assert_eq "$plain" "$(task_member_ids "$task")" "DockerIds of the Containers of the task of ep-plain"
assert_eq "$(endpoint_get_json "/v4/$plain" | jq -S -c .)" "$(jq -S -c '.Containers[0]' <<<"$task")" \
  "entry of ep-plain in its task document against its container document"

# --- errors -----------------------------------------------------------------------

unknown_id=$(printf '0%.0s' {1..64})
for id in "$app" "$sidecar" "$other_task" "$plain"; do
  [[ $id != 000000* ]] || fail "container ${id:0:12} starts like the unknown id of this test; run it again"
done
endpoint_request GET "/v4/$unknown_id"
assert_json_error 404 "GET /v4/<unknown id>"
endpoint_request GET "/v4/${unknown_id:0:12}/task"
assert_json_error 404 "GET /v4/<unknown prefix>/task"
endpoint_request GET "/v4/$unselected"
assert_json_error 404 "GET /v4/<id of a container that is not selected>"
endpoint_request GET /v4/not-an-id
assert_json_error 404 "GET /v4/not-an-id"
endpoint_request GET "/v4/$app/nope"
assert_json_error 404 "GET /v4/<id>/nope"
endpoint_request GET /nope
assert_json_error 404 "GET /nope"
endpoint_request GET /v1/agents/nope
assert_json_error 404 "GET /v1/agents/nope"

for request in "POST /v1/agents" "DELETE /v4/$app" "PUT /metrics" "POST /v4/$app/task"; do
  read -r method url_path <<<"$request"
  endpoint_request "$method" "$url_path"
  assert_json_error 405 "$request"
  allow=$(http_header allow)
  assert_contains "$allow" GET "Allow header of the 405 answer to $request"
done

endpoint_request HEAD /v1/agents
assert_eq 200 "$HTTP_STATUS" "HTTP status of HEAD /v1/agents"
assert_contains "$(http_header content-type)" application/json "Content-Type of HEAD /v1/agents"

# Two containers whose ids start with the same character make that character
# an ambiguous prefix. Ids are random, so more containers are started until
# two share it; with 17 that is certain.
supervised=("$app" "$sidecar" "$other_task" "$plain")
shared=$(shared_first_character "${supervised[@]}")
extra=0
while [[ -z $shared ]]; do
  ((extra < 13)) || fail "no two of ${#supervised[@]} container ids start with the same character"
  id=$(run_agent_container "ep-extra-$extra" '')
  extra=$((extra + 1))
  wait_agent_state "$id" RUNNING
  supervised+=("$id")
  shared=$(shared_first_character "${supervised[@]}")
done
note "ids of ${#supervised[@]} containers ($extra of them started for this check) share the first character $shared"
endpoint_request GET "/v4/$shared"
assert_json_error 409 "GET /v4/$shared, a prefix of more than one container"

# --- /v1/agents, execvisor status and the TCP listener ------------------------------

agents=$(endpoint_get_json /v1/agents)
assert_eq "$(sorted_ids "${supervised[@]}")" "$(jq -r '[.[].ContainerId] | sort | join(" ")' <<<"$agents")" \
  "ContainerIds in /v1/agents"
assert_eq "$(jq -S -c 'sort_by(.ContainerId)' <<<"$agents")" "$(status_json | jq -S -c 'sort_by(.ContainerId)')" \
  "GET /v1/agents against execvisor status --json"
assert_eq "$(jq -S -c 'sort_by(.ContainerId)' <<<"$agents")" \
  "$(endpoint_get_json --listener "$tcp_listener" /v1/agents | jq -S -c 'sort_by(.ContainerId)')" \
  "GET /v1/agents on $tcp_listener against the unix socket"
assert_eq "$(endpoint_get_json "/v4/$app/task" | jq -S -c .)" \
  "$(endpoint_get_json --listener "$tcp_listener" "/v4/$app/task" | jq -S -c .)" \
  "GET /v4/<id>/task on $tcp_listener against the unix socket"
endpoint_request --listener "$tcp_listener" GET "/v4/$unknown_id"
assert_json_error 404 "GET /v4/<unknown id> on $tcp_listener"
endpoint_request --listener "$tcp_listener" POST /v1/agents
assert_json_error 405 "POST /v1/agents on $tcp_listener"

# --- metrics ------------------------------------------------------------------------

endpoint_request GET /metrics
assert_eq 200 "$HTTP_STATUS" "HTTP status of GET /metrics"
assert_contains "$(http_header content-type)" "text/plain" "Content-Type of /metrics"
metrics=$HTTP_BODY
assert_contains "$metrics" "# TYPE execvisor_agents gauge" "/metrics"
assert_contains "$metrics" "# TYPE execvisor_injection_duration_seconds histogram" "/metrics"

running=$(jq '[.[] | select(.LastStatus == "RUNNING")] | length' <<<"$agents")
assert_eq "${#supervised[@]}" "$running" "number of RUNNING agents in /v1/agents"
assert_eq "$running" "$(metric_value "$metrics" 'execvisor_agents{state="running"}')" \
  'execvisor_agents{state="running"} against /v1/agents'
injections=$(metric_value "$metrics" execvisor_injection_duration_seconds_count)
[[ $injections =~ ^[0-9]+$ ]] || fail "/metrics has no execvisor_injection_duration_seconds_count: $metrics"
((injections >= ${#supervised[@]})) ||
  fail "execvisor_injection_duration_seconds_count is $injections, below the ${#supervised[@]} injections"
assert_eq "$injections" "$(metric_value "$metrics" 'execvisor_injection_duration_seconds_bucket{le="+Inf"}')" \
  "the +Inf bucket of execvisor_injection_duration_seconds against its count"
ok_injections=$(metric_value "$metrics" 'execvisor_injections_total{result="ok"}')
if [[ ! $ok_injections =~ ^[0-9]+$ ]] || ((ok_injections < ${#supervised[@]})); then
  fail "execvisor_injections_total{result=\"ok\"} is '$ok_injections', below the ${#supervised[@]} injections"
fi
# The buckets are cumulative: no bucket counts fewer than the one before it.
previous=0
while read -r value; do
  ((value >= previous)) || fail "the buckets of execvisor_injection_duration_seconds are not cumulative: $(grep _bucket <<<"$metrics")"
  previous=$value
done < <(awk '$1 ~ /^execvisor_injection_duration_seconds_bucket/ { print $2 }' <<<"$metrics")

endpoint_request --listener "$tcp_listener" GET /metrics
assert_eq 200 "$HTTP_STATUS" "HTTP status of GET /metrics on $tcp_listener"

# --- load: many clients, and a container started meanwhile still gets its agent --

load_codes=$TEST_TMP/load-codes
load_stop=$TEST_TMP/load-stop
run_load "$load_stop" "$load_codes" &
load_pid=$!
track_pid "$load_pid"
wait_for --timeout 20 line_count_at_least "$load_codes" "$LOAD_PARALLEL"

started_ms=$(_now_ms)
under_load=$(run_agent_container ep-under-load '')
run_done_ms=$(_now_ms)
wait_agent_state --timeout 10 "$under_load" RUNNING
running_ms=$(_now_ms)
pid_running "$load_pid" ||
  fail "the load ended before the agent of ep-under-load ran; raise LOAD_MAX_ROUNDS so that they overlap"
touch "$load_stop"
wait "$load_pid" || fail "the load generator failed"

note "ep-under-load: docker run took $((run_done_ms - started_ms)) ms, its agent ran $((running_ms - run_done_ms)) ms later, under $(wc -l <"$load_codes") requests"
((running_ms - run_done_ms <= LOAD_INJECTION_MAX_MS)) ||
  fail "under load, the agent of ep-under-load ran $((running_ms - run_done_ms)) ms after docker run returned; expected at most $LOAD_INJECTION_MAX_MS ms"
requests=$(wc -l <"$load_codes")
((requests >= LOAD_CLIENTS)) || fail "the load sent $requests requests, fewer than $LOAD_CLIENTS"
failed=$(grep -cvx 200 "$load_codes") || true
assert_eq 0 "$failed" "number of requests under load that did not get status 200 (statuses: $(sort "$load_codes" | uniq -c | tr '\n' ' '))"
check_container_document "$under_load" ep-under-load ep-under-load

# --- execvisor status once the daemon is gone ---------------------------------------

stop_supervisor
assert_eq 0 "$SUPERVISOR_STATUS" "exit status of the supervisor after SIGTERM"
[[ ! -e $(endpoint_socket) ]] || fail "the supervisor left its socket $(endpoint_socket) behind"
for json_option in "" --json; do
  status=0
  output=$("$EXECVISOR_BIN" status --state-dir "$TEST_STATE_DIR" $json_option 2>&1) || status=$?
  assert_eq 1 "$status" "exit status of 'execvisor status $json_option' with no daemon (output: $output)"
  assert_contains "$output" "no daemon is running" "output of 'execvisor status $json_option' with no daemon"
done
