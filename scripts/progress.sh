# Sourced by the project's scripts: one line per step, its full output in a log.
#
#   run_step NAME "what it does" CMD...
#
# runs CMD with stdout and stderr going to $LOG_DIR/NAME.log and prints one line on stderr:
# `setup: what it does … ok (12 s)`. While it runs it shows it is alive: on a terminal the
# line itself counts the seconds; otherwise (CI, a pipe) a line every 30 s says how long it
# has been running (a step with STEP_HINT also says when it starts). If CMD fails: the last 25 lines of the log, the log's path, and the
# step's exit status is returned. STEP_HINT (optional) is added to the first line, e.g.
# "takes several minutes the first time".
#
# LOG_DIR: $GLUSTER_LIBVIRT_LOG_DIR, default <checkout>/.logs (README, "Two commands").
: "${root:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
LOG_DIR=${GLUSTER_LIBVIRT_LOG_DIR:-$root/.logs}
: "${STEP_TAG:=setup}"

_elapsed() { # seconds -> "42 s" or "3 min 05 s"
  local s=$1
  if ((s < 60)); then printf '%d s' "$s"; else printf '%d min %02d s' $((s / 60)) $((s % 60)); fi
}

run_step() {
  local name=$1 what=$2
  shift 2
  mkdir -p "$LOG_DIR"
  local logfile=$LOG_DIR/$name.log t0=$SECONDS hint=${STEP_HINT:+ ($STEP_HINT)}
  printf '%s: %s … (started %s)\n' "$(date -u +%FT%TZ)" "$what" "$*" >"$logfile"
  "$@" >>"$logfile" 2>&1 </dev/null &
  local pid=$! tty="" next=30 status=0
  [[ -t 2 ]] && tty=1
  if [[ -n $tty ]]; then
    printf '%s: %s%s … ' "$STEP_TAG" "$what" "$hint" >&2
  elif [[ -n $hint ]]; then
    # a long step says so up front, not only at its first 30 s ticker line
    printf '%s: %s%s … started (log: %s)\n' "$STEP_TAG" "$what" "$hint" "$logfile" >&2
  fi
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    local dt=$((SECONDS - t0))
    if [[ -n $tty ]]; then
      printf '\r\033[K%s: %s%s … %s' "$STEP_TAG" "$what" "$hint" "$(_elapsed "$dt")" >&2
    elif ((dt >= next)); then
      printf '%s: %s%s … still running, %s (log: %s)\n' "$STEP_TAG" "$what" "$hint" "$(_elapsed "$dt")" "$logfile" >&2
      next=$((next + 30))
    fi
  done
  wait "$pid" || status=$?
  local dt=$((SECONDS - t0))
  [[ -n $tty ]] && printf '\r\033[K' >&2
  if ((status == 0)); then
    printf '%s: %s … ok (%s)\n' "$STEP_TAG" "$what" "$(_elapsed "$dt")" >&2
  else
    printf '%s: %s … FAILED after %s (exit %d); the end of its log:\n' "$STEP_TAG" "$what" "$(_elapsed "$dt")" "$status" >&2
    tail -n 25 "$logfile" | sed 's/^/  | /' >&2
    printf '%s: full log: %s\n' "$STEP_TAG" "$logfile" >&2
  fi
  return "$status"
}

# note "text": a step that had nothing to do, in the same one-line form.
note() { printf '%s: %s\n' "$STEP_TAG" "$*" >&2; }
