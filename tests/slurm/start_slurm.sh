#!/usr/bin/env bash
# Start a private single-node SLURM cluster for the tests: munged, MariaDB, slurmdbd, slurmctld
# and slurmd, run as root without systemd, with every config, state, log, socket and pid file
# under $SPACING_SLURM_BASE (default /tmp/spacing-slurm; keep it short: unix sockets are limited
# to 108 characters). Accounting (slurmdbd + MariaDB) is not optional: without sacct, submitit
# cannot see that a job was cancelled and waits for it forever.
#
#   tests/slurm/start_slurm.sh [--install]    # --install: apt-get the Debian packages if missing
#   source "$SPACING_SLURM_BASE/env.sh"        # exports SLURM_CONF for sbatch/squeue/sacct/submitit
#   tests/slurm/stop_slurm.sh [--purge]        # stops the daemons by their pid files
#
# Idempotent: a daemon whose pid file names a live process of the right name is left running.
set -euo pipefail

BASE=${SPACING_SLURM_BASE:-/tmp/spacing-slurm}
CLUSTER=spacing
PARTITION=${SPACING_SLURM_PARTITION:-debug}
CTLD_PORT=${SPACING_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SPACING_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${SPACING_SLURM_DBD_PORT:-6819}
DB_PORT=${SPACING_SLURM_DB_PORT:-13306}
DB_PASS=spacing-test   # a throw-away account of a database that only listens on 127.0.0.1
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core"
COMMANDS="munged mungekey munge unmunge slurmctld slurmd slurmdbd sbatch squeue sinfo sacct sacctmgr scontrol mariadbd mariadb-install-db mariadb my_print_defaults"

log() { printf '[start_slurm %s] %s\n' "$(date +%T)" "$*"; }
die() {
  echo "start_slurm: error: $*" >&2
  for f in "$BASE"/log/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

# alive PIDFILE NAME: print the pid when PIDFILE names a running (not zombie) process called NAME.
# Zombies matter: PID 1 on these machines reaps orphans only every few seconds.
alive() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  state=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  state=${state##*) }
  [ "${state%% *}" != Z ] || return 1
  echo "$pid"
}

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "gave up after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

missing_commands() {
  local c
  for c in $COMMANDS; do command -v "$c" >/dev/null || echo "$c"; done
}

if [ "${1:-}" = "--install" ] && [ -n "$(missing_commands)" ]; then
  log "installing $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi
[ -z "$(missing_commands)" ] || die "missing $(missing_commands | tr '\n' ' ')- run with --install (apt-get install $PACKAGES)"

mkdir -p "$BASE"/{etc,log,run,spool/ctld,spool/d,munge/etc,munge/run,munge/lib,mysql/data,mysql/run}
chmod 755 "$BASE" "$BASE/munge" "$BASE/munge/run"   # munged wants its socket dir world-searchable
chmod 700 "$BASE/munge/etc" "$BASE/munge/lib"

HOST=$(hostname -s)   # slurmd only serves the NodeName that equals its short host name
MEM_MB=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEM=$(( MEM_MB - (MEM_MB / 10 < 1024 ? MEM_MB / 10 : 1024) ))
TOPOLOGY=$(slurmd -C 2>/dev/null | head -n1 | grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' || true)
[ -n "$TOPOLOGY" ] || TOPOLOGY="CPUs=$(nproc)"
MUNGE_SOCKET="$BASE/munge/run/munge.socket.2"

cat > "$BASE/etc/slurm.conf" <<CONF
# written by tests/slurm/start_slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$BASE/spool/ctld
SlurmdSpoolDir=$BASE/spool/d
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
MailProg=/bin/true
# no systemd and no cgroups here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# clients reach slurmdbd through the munge socket named here, not the one in AuthInfo
AccountingStoragePass=socket=$MUNGE_SOCKET
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# start (array) jobs at once instead of seconds later
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 $TOPOLOGY RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

cat > "$BASE/etc/slurmdbd.conf" <<CONF
# written by tests/slurm/start_slurm.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$BASE/etc/slurmdbd.conf"   # slurmdbd refuses a readable one

cat > "$BASE/mysql/init.sql" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
chmod 600 "$BASE/mysql/init.sql"

echo "export SLURM_CONF=$BASE/etc/slurm.conf" > "$BASE/env.sh"
export SLURM_CONF="$BASE/etc/slurm.conf"

if pid=$(alive "$BASE/munge/run/munged.pid" munged); then
  log "munged already running (pid $pid)"
else
  [ -s "$BASE/munge/etc/munge.key" ] || { mungekey -c -k "$BASE/munge/etc/munge.key"; chmod 600 "$BASE/munge/etc/munge.key"; }
  munged -S "$MUNGE_SOCKET" --key-file="$BASE/munge/etc/munge.key" --pid-file="$BASE/munge/run/munged.pid" \
    --log-file="$BASE/log/munged.log" --seed-file="$BASE/munge/lib/munged.seed" </dev/null >>"$BASE/log/munged.out" 2>&1 \
    || die "munged did not start"
  wait_for 10 munged bash -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'"
  log "munged started (pid $(cat "$BASE/munge/run/munged.pid"))"
fi

database_ready() { mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$DB_PORT" -uslurm -p"$DB_PASS" -e 'SELECT 1' slurm_acct_db; }
if pid=$(alive "$BASE/mysql/run/mariadbd.pid" mariadbd); then
  log "mariadbd already running (pid $pid)"
else
  if [ ! -d "$BASE/mysql/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$BASE/mysql/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$BASE/log/mariadb-install-db.log" 2>&1 \
      || die "mariadb-install-db failed"
  fi
  # mariadbd stays in the foreground: setsid detaches it; it writes its own pid file
  setsid mariadbd --no-defaults --datadir="$BASE/mysql/data" --user=root \
    --socket="$BASE/mysql/run/mysqld.sock" --pid-file="$BASE/mysql/run/mariadbd.pid" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --log-error="$BASE/log/mariadbd.log" --init-file="$BASE/mysql/init.sql" \
    --innodb-buffer-pool-size=64M </dev/null >>"$BASE/log/mariadbd.out" 2>&1 &
  wait_for 60 mariadbd database_ready
  wait_for 10 "the mariadbd pid file" alive "$BASE/mysql/run/mariadbd.pid" mariadbd
  log "mariadbd started (pid $(cat "$BASE/mysql/run/mariadbd.pid"))"
fi

# start_daemon NAME READY-COMMAND...: start a SLURM daemon (they fork and write their pid file)
start_daemon() {
  local name=$1 pid
  shift
  if pid=$(alive "$BASE/run/$name.pid" "$name"); then
    log "$name already running (pid $pid)"
    return
  fi
  "$name" </dev/null >>"$BASE/log/$name.out" 2>&1 || die "$name did not start"
  wait_for 10 "the $name pid file" alive "$BASE/run/$name.pid" "$name"
  [ $# -eq 0 ] || wait_for 60 "$name to answer" "$@"
  log "$name started (pid $(cat "$BASE/run/$name.pid"))"
}
start_daemon slurmdbd sacctmgr -n list cluster
start_daemon slurmctld scontrol ping
start_daemon slurmd

node_ready() { case "$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null)" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }
wait_for 60 "node $HOST to be idle" node_ready
wait_for 30 "cluster $CLUSTER in the accounting database" \
  bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx '$CLUSTER'"
log "ready: partition $PARTITION on $HOST ($TOPOLOGY, ${REAL_MEM} MB); source $BASE/env.sh"
