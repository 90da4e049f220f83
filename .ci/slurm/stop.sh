#!/usr/bin/env bash
# Stop the daemons .ci/slurm/start.sh started, by the PIDs it recorded (never by name):
# SIGTERM, then SIGKILL after 10 s. Jobs still queued or running are cancelled first.
set -uo pipefail

DIR="${SMF_SLURM_DIR:-/tmp/smf-slurm}"
# Jobs first, while the controller is up: their step daemons are slurmd's children, not ours.
if [[ -f $DIR/slurmctld.pid.ours && -f $DIR/slurm.conf ]] \
    && kill -0 "$(cat "$DIR/slurmctld.pid.ours")" 2>/dev/null; then
    export SLURM_CONF="$DIR/slurm.conf"
    jobs="$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null)"
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 60); do [[ -z $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]] && break; sleep 0.5; done
        echo "slurm: cancelled jobs $(echo $jobs)"
    fi
fi
for name in slurmd slurmctld munged; do
    file="$DIR/$name.pid.ours"
    [[ -f $file ]] || continue
    pid="$(cat "$file")"
    # Only a process that is still the daemon we started (a reused PID is left alone).
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q "$name"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
            echo "slurm: $name ($pid) needed SIGKILL"
        fi
        echo "slurm: stopped $name ($pid)"
    fi
    rm -f "$file"
done
if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$DIR/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
