# shellcheck shell=bash
# A throwaway single-node Slurm for the tests, sourced by .ci/run (by hand: `source
# .ci/slurm.sh; slurm_start`, then `slurm_stop`). Debian's packages (munge, slurmctld,
# slurmd, slurm-client), installed if missing; everything else (slurm.conf, the munge
# key and socket, state, spool, logs) lives in a temporary folder, nothing in /etc. One
# node named after this host with its CPUs and memory, no accounting daemon, plugins
# that need no cgroups (a container has none to give). SLURM_CONF points every Slurm
# command (and the sbatch of the tests) at it; GRADLAB_TEST_SLURM=1 tells the tests it
# is up. Stopped (jobs cancelled, daemons killed, folder removed) when the shell exits.
slurm_dir=""

slurm_stop() {
  if [ -z "$slurm_dir" ]; then return 0; fi
  # Jobs first, while slurmctld still answers: no job outlives the tests.
  if [ -f "$slurm_dir/slurmctld.pid" ]; then
    export SLURM_CONF="$slurm_dir/slurm.conf"
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    # Their slurmstepd processes end with them: wait for that, before slurmd goes.
    for _ in $(seq 75); do
      [ -z "$(squeue -h -t PD,R,CG,S 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  local pidfile pid
  for pidfile in slurmd.pid slurmctld.pid munged.pid; do
    pid="$(cat "$slurm_dir/$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      # Each daemon gets 10 s to go, then is killed: no daemon is left running.
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$slurm_dir"
  slurm_dir=""
  unset GRADLAB_TEST_SLURM SLURM_CONF
}

slurm_start() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge slurmctld slurmd slurm-client >/dev/null
  fi
  slurm_dir="$(mktemp -d /tmp/gradlab-slurm.XXXXXX)"
  slurm_stop_on_exit
  mkdir -p "$slurm_dir/state" "$slurm_dir/spool"
  local node cpus memory user
  node="$(hostname -s)"
  cpus="$(nproc)"
  # Slurm refuses a node that reports less memory than slurm.conf says: a little under.
  memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
  user="$(id -un)"

  # munge: its own key and socket, so a host's own munged (if any) is left alone.
  dd if=/dev/urandom of="$slurm_dir/munge.key" bs=1024 count=1 status=none
  chmod 400 "$slurm_dir/munge.key"
  munged --force --key-file="$slurm_dir/munge.key" --socket="$slurm_dir/munge.socket" \
    --pid-file="$slurm_dir/munged.pid" --log-file="$slurm_dir/munged.log" \
    --seed-file="$slurm_dir/munged.seed"

  cat >"$slurm_dir/slurm.conf" <<EOF
ClusterName=gradlab
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$slurm_dir/munge.socket
SlurmctldPort=$(slurm_free_port)
SlurmdPort=$(slurm_free_port)
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/slurmctld.log
SlurmdLogFile=$slurm_dir/slurmd.log
# No cgroups in a container: processes tracked by their parents, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Finished jobs stay in slurmctld's memory (squeue -t all, scontrol) for 5 minutes.
JobCompType=jobcomp/none
MinJobAge=300
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# A quick test cluster: a job is scheduled at once, and a killed job gives up quickly.
SchedulerParameters=sched_interval=1
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$slurm_dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  local state=""
  for _ in $(seq 60); do
    state="$(sinfo -h -N -o %t 2>/dev/null || true)"
    if [ "$state" = idle ]; then break; fi
    sleep 0.5
  done
  if [ "$state" != idle ]; then
    echo "Slurm's node did not become idle (state: ${state:-none}); logs in $slurm_dir" >&2
    tail -n 20 "$slurm_dir"/*.log >&2 || true
    return 1
  fi
  export GRADLAB_TEST_SLURM=1
  echo "Slurm $(sinfo -V | awk '{print $2}') on node $node ($cpus CPUs) for the tests"
}

slurm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_stop_on_exit() {
  # Added to the EXIT trap already set (postgres_stop, when .ci/postgres.sh started
  # first), not in its place: a second `trap ... EXIT` would drop the first.
  local previous
  previous="$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")"
  case "$previous" in
    *slurm_stop*) ;;
    *) trap "slurm_stop${previous:+; $previous}" EXIT ;;
  esac
}
