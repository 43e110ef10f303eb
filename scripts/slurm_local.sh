#!/usr/bin/env bash
# A real SLURM cluster on this machine, for tests and for trying cluster=slurm without a cluster:
# munge, slurmdbd (accounting, so sacct reports job states) on a private MariaDB, slurmctld, a
# slurmd for this machine (partition `debug`, the default) and TPT_SLURM_NODES more compute nodes
# (partition `multi`), all as root with their files under one folder.
#
# Each node of `multi` is a slurmd in its own network and UTS namespace (`ip netns`, `unshare
# --uts`): its own hostname (tpt-n1, tpt-n2, ...) and address (10.77.0.11, ...) on a bridge that
# this script creates (tptbr0, 10.77.0.1 on this machine's side; nothing is routed beyond it), names
# in /etc/hosts between marker lines, two fake GPUs each (GRES on character devices with /dev/null's
# numbers: jobs ask for GPUs as on a real cluster and run on the CPU). The filesystem is shared, as a cluster's is. Why not
# `slurmd -N` several times on one address: Debian's SLURM is not built with
# --enable-multiple-slurmd, and a job's processes would share one hostname, which is what a
# multi-node test must not have.
#
#   sudo bash scripts/slurm_local.sh install   # Debian packages (slurm-wlm, munge, MariaDB)
#   sudo bash scripts/slurm_local.sh start     # prints the `export SLURM_CONF=...` line to use
#   sudo bash scripts/slurm_local.sh stop
#   srun -p multi --nodes=2 hostname            # tpt-n1, tpt-n2
#
#   TPT_SLURM_DIR    where config, state and daemon logs go (default /tmp/tpt-slurm)
#   TPT_SLURM_NODES  compute nodes in their own namespaces (default 2; 0: this machine's only)
# `start` fails with the daemons' logs when a daemon does not come up.
set -euo pipefail
DIR=${TPT_SLURM_DIR:-/tmp/tpt-slurm}
export SLURM_CONF=$DIR/slurm.conf
NODE=$(hostname -s)
NODES=${TPT_SLURM_NODES:-2}
BRIDGE=tptbr0
NET=10.77.0              # the bridge's /24: .1 this machine, .1<i> node tpt-n<i>
GPUS_PER_NODE=2          # fake: GRES on /dev/null-like devices (write_configs)
HOSTS_BEGIN="# tpt slurm_local nodes: begin"
HOSTS_END="# tpt slurm_local nodes: end"
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

node_name() { echo "tpt-n$1"; }
node_addr() { echo "$NET.$((10 + $1))"; }

running() {  # running <pid file>
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

network_up() {  # the bridge, one namespace per node with a veth into it, and the names in /etc/hosts
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  local i ns
  for i in $(seq "$NODES"); do
    ns=$(node_name "$i")
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
      ip link add "tptv$i" type veth peer name eth0 netns "$ns"
      ip link set "tptv$i" master "$BRIDGE" up
      ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
      ip -n "$ns" link set lo up
      ip -n "$ns" link set eth0 up
    fi
  done
  hosts_block_remove
  {
    echo "$HOSTS_BEGIN"
    for i in $(seq "$NODES"); do echo "$(node_addr "$i") $(node_name "$i")"; done
    echo "$HOSTS_END"
  } >> /etc/hosts
}

hosts_block_remove() {  # in place: /etc/hosts may be a bind mount, which a rename would not replace
  local kept
  kept=$(sed "/^$HOSTS_BEGIN\$/,/^$HOSTS_END\$/d" /etc/hosts)
  printf '%s\n' "$kept" > /etc/hosts
}

network_down() {
  local ns
  for ns in /run/netns/tpt-n*; do [ -e "$ns" ] && ip netns del "$(basename "$ns")"; done
  ip link del "$BRIDGE" 2>/dev/null || true
  if grep -q "^$HOSTS_BEGIN" /etc/hosts; then hosts_block_remove; fi
}

start_nodes() {  # each node's slurmd inside its namespaces, with its own hostname
  local i name
  for i in $(seq "$NODES"); do
    name=$(node_name "$i")
    running "$DIR/run/slurmd-$name.pid" && continue
    mkdir -p "$DIR/spool/$name"
    # nsenter, not `ip netns exec`: that one remounts /sys for the namespace, which hides
    # /sys/fs/cgroup, and slurmd will not start without its cgroup plugin.
    nsenter --net="/run/netns/$name" unshare --uts sh -c "hostname $name && exec slurmd -N $name"
  done
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
  local mem_mb cpus ctl_addr=127.0.0.1 multi_nodes="tpt-n[1-$NODES]" i
  [ "$NODES" -gt 0 ] && ctl_addr=$NET.1  # reachable from every node's namespace, and from here
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  # The node's cores. nproc obeys OMP_NUM_THREADS: started from a test worker that set it to 1, the
  # node had one CPU and every job asking for two stayed pending (PartitionConfig) for good.
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  cat > "$DIR/slurm.conf" <<EOF
ClusterName=tptlocal
SlurmctldHost=$NODE($ctl_addr)
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
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldPort=${TPT_SLURMCTLD_PORT:-6817}
SlurmdPort=${TPT_SLURMD_PORT:-6818}
ReturnToService=2
# SIGTERM to SIGKILL when a job is cancelled or requeued: 30 s by default; 2 s keeps those tests short.
KillWait=2
MinJobAge=300
GresTypes=gpu
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
  : > "$DIR/gres.conf"
  [ "$NODES" -gt 0 ] || return 0
  for i in $(seq "$NODES"); do
    echo "NodeName=$(node_name "$i") NodeAddr=$(node_addr "$i") CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$GPUS_PER_NODE State=UNKNOWN"
  done >> "$DIR/slurm.conf"
  echo "PartitionName=multi Nodes=$multi_nodes MaxTime=INFINITE State=UP" >> "$DIR/slurm.conf"
  # SLURM drops a GPU without a device file ("file-less GPU"), so each fake GPU is a character
  # device with /dev/null's numbers: slurmd can stat it, and a job sees CUDA_VISIBLE_DEVICES=0,1.
  mkdir -p "$DIR/dev"
  for i in $(seq 0 $((GPUS_PER_NODE - 1))); do
    [ -c "$DIR/dev/nvidia$i" ] || mknod "$DIR/dev/nvidia$i" c 1 3
  done
  echo "NodeName=$multi_nodes Name=gpu File=$DIR/dev/nvidia[0-$((GPUS_PER_NODE - 1))]" > "$DIR/gres.conf"
}

start() {
  install
  mkdir -p "$DIR/log"
  if [ "$NODES" -gt 0 ] && ! network_up 2> "$DIR/log/network.log"; then
    echo "slurm_local: no network namespaces here ($(tail -n 1 "$DIR/log/network.log")); no partition multi" >&2
    network_down
    NODES=0
  fi
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
  # A fresh controller starts from a clean slate (-c): a node drained by an earlier start (a wrong
  # gres.conf, say) would stay drained after the fix, and a job recovered from an earlier instance
  # (a test run killed mid-job) would hold the partition multi's nodes, so every later multi-node
  # job waits for resources until its timeout. Every node registers afresh; a real problem drains it again.
  running "$DIR/run/slurmctld.pid" || slurmctld -c
  mkdir -p "$DIR/spool/$NODE"
  running "$DIR/run/slurmd-$NODE.pid" || slurmd -N "$NODE"
  start_nodes
  wait_for "slurmd (every node idle)" 60 sh -c "[ \$(sinfo -h -N -o %t | grep -cx idle) = $((NODES + 1)) ]"
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
  network_down
  echo "slurm_local: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  logs) show_logs ;;
  *) echo "usage: $0 install|start|stop|logs" >&2; exit 2 ;;
esac
