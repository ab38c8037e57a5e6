# Helpers shared by the scripts in scripts/. Source this file; do not run it.

# The repository root, found from this file's own location so that the scripts
# work from any current directory.
# shellcheck disable=SC2034 # used by the scripts that source this file
EXECVISOR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Progress messages go to stderr so that a script's stdout stays usable.
info() {
  printf '==> %s\n' "$*" >&2
}

warn() {
  printf 'warning: %s\n' "$*" >&2
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Exit with a message unless the script runs as root. $1 is the reason root is needed.
require_root() {
  if [[ $EUID -ne 0 ]]; then
    die "$(basename "$0") must run as root because it $1; run it again as root (for example with sudo)"
  fi
}
