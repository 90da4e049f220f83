#!/usr/bin/env bash
# Stop the daemons .ci/slurm/start.sh started, by the PIDs it recorded (never by name):
# SIGTERM, then SIGKILL after 10 s. Jobs still queued or running are cancelled first.
#
#   .ci/slurm/stop.sh               # the cluster in $SMF_SLURM_DIR (default /tmp/smf-slurm)
#   .ci/slurm/stop.sh --alive DIR   # only tell: exit 0 if a daemon started from DIR still runs
set -uo pipefail

DIR="${SMF_SLURM_DIR:-/tmp/smf-slurm}"
DAEMONS=(slurmd slurmctld munged)

# The PID in DIR/<name>.pid.ours if that process is still the daemon we started (a reused PID
# belongs to someone else and is left alone).
our_pid() {
    local file="$1/$2.pid.ours" pid
    [[ -f $file ]] || return 1
    pid="$(cat "$file")"
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^$2 " \
        && echo "$pid"
}

if [[ ${1:-} == --alive ]]; then
    for name in "${DAEMONS[@]}"; do
        our_pid "$2" "$name" >/dev/null && exit 0
    done
    exit 1
fi

# Jobs first, while the controller is up: their step daemons are slurmd's children, not ours.
if our_pid "$DIR" slurmctld >/dev/null && [[ -f $DIR/slurm.conf ]]; then
    export SLURM_CONF="$DIR/slurm.conf"
    jobs="$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null)"
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 60); do
            [[ -z $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]] && break
            sleep 0.5
        done
        echo "slurm: cancelled jobs" $jobs
    fi
fi
for name in "${DAEMONS[@]}"; do
    if pid="$(our_pid "$DIR" "$name")"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
            echo "slurm: $name ($pid) needed SIGKILL"
        fi
        echo "slurm: stopped $name ($pid)"
    fi
    rm -f "$DIR/$name.pid.ours"
done
if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
