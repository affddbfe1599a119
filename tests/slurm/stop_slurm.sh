#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_slurm.sh started: cancel its jobs, then stop each daemon
# by the pid in its pid file (SIGTERM, SIGKILL after 20 s). Never matches processes by name.
#   --purge   also delete $SPACING_SLURM_BASE (state, database, munge key, logs)
# Safe to run when nothing (or only part of it) is running.
set -uo pipefail

BASE=${SPACING_SLURM_BASE:-/tmp/spacing-slurm}
export SLURM_CONF="$BASE/etc/slurm.conf"

log() { printf '[stop_slurm %s] %s\n' "$(date +%T)" "$*"; }

# running PID NAME: PID is a live (not zombie) process called NAME
running() {
  local state
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  state=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${state##*) }
  [ "${state%% *}" != Z ]
}

# stop PIDFILE NAME...: pairs of pid file and process name, stopped together
stop() {
  local pids=() names=() pid i
  while [ $# -gt 0 ]; do
    pid=$(cat "$1" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && running "$pid" "$2"; then
      kill -TERM "$pid" 2>/dev/null && { pids+=("$pid"); names+=("$2"); }
    else
      log "$2 is not running"
    fi
    rm -f "$1"
    shift 2
  done
  for _ in $(seq 100); do
    local left=0
    for i in "${!pids[@]}"; do running "${pids[$i]}" "${names[$i]}" && left=1; done
    [ $left = 0 ] && break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if running "${pids[$i]}" "${names[$i]}"; then
      log "${names[$i]} still alive after 20 s: SIGKILL ${pids[$i]}"
      kill -KILL "${pids[$i]}" 2>/dev/null
    fi
    log "${names[$i]} stopped (pid ${pids[$i]})"
  done
}

# jobs first, so that no job step outlives slurmd
ctld=$(cat "$BASE/run/slurmctld.pid" 2>/dev/null || true)
if [[ "$ctld" =~ ^[0-9]+$ ]] && running "$ctld" slurmctld; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs $jobs"
    scancel --quiet $jobs 2>/dev/null || true
    for _ in $(seq 75); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# reverse start order: slurmctld hands its accounting to slurmdbd before slurmdbd goes
stop "$BASE/run/slurmd.pid" slurmd "$BASE/run/slurmctld.pid" slurmctld
stop "$BASE/run/slurmdbd.pid" slurmdbd
stop "$BASE/mysql/run/mariadbd.pid" mariadbd "$BASE/munge/run/munged.pid" munged

if [ "${1:-}" = "--purge" ]; then
  rm -rf "$BASE"
  log "removed $BASE"
fi
