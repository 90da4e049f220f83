#!/usr/bin/env bash
# Start a private single-node Slurm cluster (munged, slurmctld, slurmd) for CI and tests.
#
#   .ci/slurm/start.sh            # prints `export SLURM_CONF=...` on its last line
#   .ci/slurm/stop.sh             # stops every daemon this script started, by PID
#
# Everything lives in $SMF_SLURM_DIR (default /tmp/smf-slurm): config, munge key and socket,
# controller state, spool, logs and one pidfile per daemon. Nothing under /var/lib/slurm or /run
# is used (only a link /etc/slurm/slurm.conf to the config, which stop.sh removes), so leftovers
# of a system Slurm or of an earlier run cannot leak in: an earlier run's daemons are stopped (by
# their pidfiles) and its folder is wiped before starting. A cluster still running from another
# folder is left alone (exit 1).
# Exit codes: 0 up, 2 not root, 3 binaries missing, 1 anything else (logs are printed).
set -euo pipefail

DIR="${SMF_SLURM_DIR:-/tmp/smf-slurm}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# Seconds the controller keeps a finished job visible to squeue: the executor's squeue-based
# status checks must see every job end (its own rule: at least 3 x its first-check delay).
MIN_JOB_AGE="${SMF_SLURM_MIN_JOB_AGE:-300}"
# Seconds between SIGTERM and SIGKILL when a job is cancelled, preempted or times out.
KILL_WAIT="${SMF_SLURM_KILL_WAIT:-10}"

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm: needs root (slurmd runs jobs for users); running as $(id -un)" >&2
    exit 2
fi
missing=()
for bin in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$bin" >/dev/null || missing+=("$bin")
done
if ((${#missing[@]})); then
    echo "slurm: missing binaries: ${missing[*]} (apt-get install slurmctld slurmd slurm-client munge)" >&2
    exit 3
fi

"$HERE/stop.sh" >/dev/null  # an earlier run's daemons, if any
rm -rf "$DIR"
mkdir -p "$DIR"/{state,spool,log,munge}
chmod 700 "$DIR/munge"

NODE="$(hostname -s)"
# CPUs and memory exactly as slurmd detects them: a node that claims more is set DRAIN.
read -r CPUS MEM < <(slurmd -C | awk '/^NodeName/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    print v["CPUs"], v["RealMemory"] }')

dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
SOCKET="$DIR/munge/munge.socket"

cat >"$DIR/slurm.conf" <<CONF
ClusterName=smf
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
KillWait=$KILL_WAIT
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
# No plugstack (spank) plugins: the system's /etc/slurm/plugstack.conf is not ours.
: >"$DIR/plugstack.conf"
echo "PlugStackConfig=$DIR/plugstack.conf" >>"$DIR/slurm.conf"
export SLURM_CONF="$DIR/slurm.conf"
# Clients also need the config at the default path: the executor's job step strips SLURM_*
# variables (SLURM_CONF too) before it calls srun. Only a missing file or our own link is
# replaced; stop.sh removes the link.
SYS_CONF=/etc/slurm/slurm.conf
if [[ -L $SYS_CONF && $(readlink "$SYS_CONF") != "$SLURM_CONF" ]]; then
    # Another folder's link: left by a run that died (replace it), or a live cluster (refuse).
    other="$(dirname "$(readlink "$SYS_CONF")")"
    if "$HERE/stop.sh" --alive "$other"; then
        echo "slurm: a cluster started from $other is running (its $SYS_CONF link);" \
            "stop it first: SMF_SLURM_DIR=$other $HERE/stop.sh" >&2
        exit 1
    fi
    rm -f "$SYS_CONF"
fi
if [[ -e $SYS_CONF && ! -L $SYS_CONF ]]; then
    echo "slurm: $SYS_CONF exists and is not ours; not touching a system Slurm" >&2
    exit 1
fi
mkdir -p "$(dirname "$SYS_CONF")"
ln -sfn "$SLURM_CONF" "$SYS_CONF"

fail() {
    echo "slurm: $1" >&2
    tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true
    "$HERE/stop.sh" >&2 || true
    exit 1
}

# Each daemon runs in the foreground of its own session; its PID is the one we started.
setsid munged -F --force --key-file "$DIR/munge/munge.key" --socket "$SOCKET" \
    --pid-file "$DIR/munge/munged.pid.ignored" --seed-file "$DIR/munge/seed" \
    --log-file "$DIR/log/munged.log" </dev/null >>"$DIR/log/munged.out" 2>&1 &
echo $! >"$DIR/munged.pid.ours"
for _ in $(seq 50); do [[ -S $SOCKET ]] && break; sleep 0.1; done
[[ -S $SOCKET ]] || fail "munged did not create $SOCKET"

setsid slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/slurmctld.pid.ours"
setsid slurmd -D -N "$NODE" -f "$SLURM_CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/slurmd.pid.ours"

state=""
for _ in $(seq 60); do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
    [[ $state == idle ]] && break
    sleep 0.5
done
[[ $state == idle ]] || fail "node $NODE is '${state:-unreachable}', not idle after 30 s"
echo "slurm: node $NODE up ($CPUS CPUs, $MEM MB) in $DIR" >&2
echo "export SLURM_CONF=$SLURM_CONF"
