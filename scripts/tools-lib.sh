# Helpers shared by scripts/moto-up, scripts/localstack-up, scripts/tool-down and
# scripts/aws-smoke. Source it; do not run it.
#
# State of a server NAME lives under .run/ (git-ignored):
#   .run/NAME.pid   "PID STARTTIME" of the server; the server leads its own process group
#   .run/NAME.port  the port it listens on (127.0.0.1)
#   .run/NAME.log   its stdout and stderr

TOOLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR=$TOOLS_ROOT/.run

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# tools_port ARG: print ARG if it is a usable TCP port, else die.
tools_port() {
	local p=${1:-}
	if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
		die "usage: $(basename "$0") PORT (got '${p}')"
	fi
	echo "$p"
}

# Environment prefix for a tool: local dummy credentials only, never the caller's AWS
# setup. Use as: "${TOOLS_ENV[@]}" command args...
TOOLS_ENV=(env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN
	-u AWS_ENDPOINT_URL -u AWS_DEFAULT_PROFILE
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
	AWS_REGION=us-east-1 AWS_PAGER=)

# Start time of PID in clock ticks since boot (field 22 of /proc/PID/stat).
tools_starttime() {
	local stat fields
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -ra fields <<<"${stat##*) }" # fields[0] is field 3, the state
	echo "${fields[19]}"
}

# tools_pid NAME: print the server's PID if its pid file names a live process that we
# started (same PID and start time); remove a stale pid file otherwise.
tools_pid() {
	local f=$RUN_DIR/$1.pid pid start now
	[[ -f $f ]] || return 1
	read -r pid start <"$f" || true
	if [[ $pid =~ ^[0-9]+$ ]] && now=$(tools_starttime "$pid") && [[ $now == "$start" ]]; then
		echo "$pid"
		return 0
	fi
	rm -f "$f" "$RUN_DIR/$1.port"
	return 1
}

# Is something already listening on 127.0.0.1:PORT?
tools_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# tools_stop NAME [TIMEOUT]: SIGTERM the server's process group, SIGKILL after TIMEOUT s.
tools_stop() {
	local name=$1 timeout=${2:-${TOOL_DOWN_TIMEOUT:-20}} pid i
	pid=$(tools_pid "$name") || return 1
	kill -TERM -- "-$pid" 2>/dev/null || true
	for ((i = 0; i < timeout * 10; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 -- "-$pid" 2>/dev/null; then
		echo "$name: still running after ${timeout}s, sending SIGKILL" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port"
	return 0
}

# tools_start NAME PORT HEALTHCHECK TIMEOUT CMD...: start CMD in the background in its
# own session, then poll `HEALTHCHECK PORT` until it succeeds. On timeout or early exit,
# print the end of the log, stop the server and fail.
tools_start() {
	local name=$1 port=$2 check=$3 timeout=$4 pid old log i
	shift 4
	log=$RUN_DIR/$name.log
	mkdir -p "$RUN_DIR"
	if pid=$(tools_pid "$name"); then
		old=$(cat "$RUN_DIR/$name.port" 2>/dev/null || true)
		if [[ $old == "$port" ]] && "$check" "$port"; then
			echo "$name: already running on http://127.0.0.1:$port (pid $pid)"
			return 0
		fi
		die "$name is already running (pid $pid, port ${old:-?}); stop it first: scripts/tool-down $name"
	fi
	tools_port_busy "$port" && die "port $port on 127.0.0.1 is already in use"

	: >"$log"
	set +m # no job control: setsid then makes the server lead its own process group
	"${TOOLS_ENV[@]}" setsid "$@" </dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid $(tools_starttime "$pid")" >"$RUN_DIR/$name.pid"
	echo "$port" >"$RUN_DIR/$name.port"

	for ((i = 0; i < timeout * 4; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$(basename "$0"): $name exited during startup; last lines of $log:" >&2
			tail -n 40 "$log" >&2
			rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port"
			kill -KILL -- "-$pid" 2>/dev/null || true
			exit 1
		fi
		if "$check" "$port"; then
			echo "$name: up on http://127.0.0.1:$port (pid $pid, log ${log#"$TOOLS_ROOT"/})"
			return 0
		fi
		sleep 0.25
	done
	echo "$(basename "$0"): $name not healthy on 127.0.0.1:$port after ${timeout}s; last lines of $log:" >&2
	tail -n 40 "$log" >&2
	tools_stop "$name" 5 || true
	exit 1
}
