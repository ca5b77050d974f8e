# Sourced by the Benchmarks scripts: sets `agent` to --agent PATH, else $SDS_AGENT_BIN, else a
# release build made here (.build-release), and `args` to the other arguments.
#   . Benchmarks/agent-binary.sh "$@"
agent=${SDS_AGENT_BIN:-}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$agent" ]; then
  swift build -c release --scratch-path .build-release --product sds-agent
  agent=.build-release/release/sds-agent
fi
