#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests and for trying cluster=slurm
# without a cluster: munge, slurmdbd (accounting, so sacct reports job states) on a private
# MariaDB, slurmctld and slurmd, all as root with their files under one folder.
#
#   sudo bash scripts/slurm_local.sh install   # Debian packages (slurm-wlm, munge, MariaDB)
#   sudo bash scripts/slurm_local.sh start     # prints the `export SLURM_CONF=...` line to use
#   sudo bash scripts/slurm_local.sh stop
#
#   TPT_SLURM_DIR   where config, state and daemon logs go (default /tmp/tpt-slurm)
# `start` fails with the daemons' logs when a daemon does not come up.
set -euo pipefail
DIR=${TPT_SLURM_DIR:-/tmp/tpt-slurm}
export SLURM_CONF=$DIR/slurm.conf
NODE=$(hostname -s)
SOCK=/run/mysqld/mysqld.sock  # where slurmdbd's MySQL client looks
PACKAGES="slurmd slurmctld slurmdbd slurm-client munge mariadb-server"

show_logs() {
  for f in "$DIR"/log/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 15 "$f"; }; done >&2
}

wait_for() {  # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$((secs * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "slurm_local: $what did not come up within ${secs}s; daemon logs:" >&2
  show_logs
  return 1
}

install() {
  local missing=0
  for bin in slurmd slurmctld slurmdbd sbatch munged mariadbd; do command -v "$bin" >/dev/null || missing=1; done
  [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/slurmdbd ] && [ -x /usr/sbin/munged ] && [ -x /usr/sbin/mariadbd ] || missing=1
  [ "$missing" = 0 ] && { echo "slurm_local: packages already installed"; return 0; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null; }
  echo "slurm_local: installed $PACKAGES"
}

write_configs() {
  mkdir -p "$DIR"/{state,spool,log,mysql,run}
  local mem_mb cpus
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  # The node's cores. nproc obeys OMP_NUM_THREADS: started from a test worker that set it to 1, the
  # node had one CPU and every job asking for two stayed pending (PartitionConfig) for good.
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  cat > "$DIR/slurm.conf" <<EOF
ClusterName=tptlocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=${TPT_SLURMDBD_PORT:-6819}
JobRequeue=1
# A requeued job waits cred_expire + 1 s before it starts again (slurmd refuses to launch it sooner: its
# credential was revoked that second). 120 s by default; 10 s keeps the requeue tests short.
AuthInfo=cred_expire=10
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Schedule every 2 s, not every 60 (main loop) and 30 (backfill): a requeued job whose hold has passed
# waits for the next pass, as nothing else wakes the scheduler then.
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${TPT_SLURMCTLD_PORT:-6817}
SlurmdPort=${TPT_SLURMD_PORT:-6818}
ReturnToService=2
# SIGTERM to SIGKILL when a job is cancelled or requeued: 30 s by default; 2 s keeps those tests short.
KillWait=2
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=${TPT_SLURMDBD_PORT:-6819}
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=root
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

start() {
  install
  write_configs
  # munge: the Debian package made a key; run the daemon as its own user.
  mkdir -p /run/munge /run/mysqld && chown munge:munge /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    su -s /bin/sh munge -c munged
  fi
  wait_for munged 20 sh -c 'munge -n | unmunge'
  # MariaDB for slurmdbd: a private data folder and socket.
  if [ ! -d "$DIR/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=normal \
      > "$DIR/log/mariadb-install.log" 2>&1
  fi
  if ! mariadb-admin --socket="$SOCK" -uroot ping >/dev/null 2>&1; then
    nohup mariadbd --user=root --datadir="$DIR/mysql" --socket="$SOCK" --skip-networking \
      --pid-file="$DIR/run/mysqld.pid" --log-error="$DIR/log/mariadb.log" >/dev/null 2>&1 &
  fi
  wait_for MariaDB 60 mariadb-admin --socket="$SOCK" -uroot ping
  pgrep -x slurmdbd >/dev/null || slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for slurmdbd 60 sacctmgr -n list cluster
  sacctmgr -i -Q add cluster tptlocal >/dev/null 2>&1 || true
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  wait_for "slurmd (node idle)" 60 sh -c "sinfo -h -N -o %t | grep -qx idle"
  wait_for "sacct" 30 sacct -n -X
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  [ -f "$SLURM_CONF" ] && scontrol shutdown >/dev/null 2>&1 || true
  [ -f "$DIR/run/slurmdbd.pid" ] && kill "$(cat "$DIR/run/slurmdbd.pid")" 2>/dev/null || true
  mariadb-admin --socket="$SOCK" -uroot shutdown 2>/dev/null || true
  # shutdown only asks: wait until the daemons are gone, or a start right after sees them still
  # running, starts nothing, and waits for a controller that has exited. (Without a controller,
  # scontrol cannot reach slurmd, which may then take minutes: SIGTERM after 10 s, SIGKILL after 20.)
  local daemon i
  for i in $(seq 120); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || pgrep -x slurmdbd >/dev/null || break
    for daemon in slurmctld slurmd slurmdbd; do
      [ "$i" = 40 ] && pkill -x "$daemon"
      [ "$i" = 80 ] && pkill -KILL -x "$daemon"
    done
    sleep 0.25
  done
  echo "slurm_local: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  logs) show_logs ;;
  *) echo "usage: $0 install|start|stop|logs" >&2; exit 2 ;;
esac
