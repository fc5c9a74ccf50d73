"""The names the lab gives things in MLflow: run tags, metric names, the environment
variable a sweep passes to its jobs. Every module that writes or reads one of them takes
it from here, so a name is spelt once, and the report reads what the runs wrote.

Per-layer metric names (`grad_norm/layer_NN`) follow `models.naming`.
"""

from __future__ import annotations

DEFAULT_EXPERIMENT = "gradient-lab"

# --- MLflow's own tags, as its UI reads them ---
DESCRIPTION_TAG = "mlflow.note.content"
MLFLOW_GIT_COMMIT_TAG = "mlflow.source.git.commit"
PARENT_TAG = "mlflow.parentRunId"
DATASET_CONTEXT_TAG = "mlflow.data.context"

# --- What a run is ---
SEED_TAG = "seed"
# The checkout's commit as the lab reads it (MLflow's tag is missing on a Ray worker).
GIT_COMMIT_TAG = "git_commit"
OUTPUT_DIR_TAG = "output_dir"
# `choice.<group>`: the option of each config group (`choice.activation=prelu`).
CHOICE_TAG_PREFIX = "choice."
# The config digest (core.digest), with and without the seed.
HASH_TAG = "config_hash"
GROUP_TAG = "group_hash"

# --- Where the process runs (a run RUNNING whose process is gone is an orphan) ---
HOST_TAG = "host"
PID_TAG = "pid"
PROCESS_START_TAG = "process_start"

# --- Continuing a run (runs.continuation) ---
# The run's checkpoint file, while it has one; how many times it was continued, and from
# which epoch the last time.
CHECKPOINT_TAG = "checkpoint"
CONTINUATIONS_TAG = "continuations"
CONTINUED_FROM_TAG = "continued_from_epoch"

# --- How a run ended ---
FAILURE_REASON_TAG = "failure_reason"
FAILED_EPOCH_TAG = "failed_epoch"
# Artifacts kept on disk that the store lacks, and files that could not be written.
MISSING_TAG = "missing_artifacts"
MISSING_REASON_TAG = "missing_artifacts_reason"
UNWRITTEN_TAG = "unwritten_artifacts"
UNWRITTEN_REASON_TAG = "unwritten_artifacts_reason"
# The gradient verdict (diagnostics.verdict): one word, then where and why.
HEALTH_TAG = "gradient_health"
HEALTH_LAYER_TAG = "gradient_health_layer"
HEALTH_EPOCH_TAG = "gradient_health_epoch"
HEALTH_REASON_TAG = "gradient_health_reason"
HEALTH_TAGS = (HEALTH_TAG, HEALTH_LAYER_TAG, HEALTH_EPOCH_TAG, HEALTH_REASON_TAG)

# --- Sweeps ---
# How a job learns its sweep's parent run (set in every job through hydra.job.env_set).
SWEEP_PARENT_ENV = "GRADLAB_SWEEP_PARENT_RUN_ID"
# A sweep's progress (sweeps.progress): its start (seconds since the epoch), its number
# of jobs, the file that counts the ended ones, the store of its parent run.
SWEEP_STARTED_ENV = "GRADLAB_SWEEP_STARTED"
SWEEP_JOBS_ENV = "GRADLAB_SWEEP_JOBS"
SWEEP_PROGRESS_FILE_ENV = "GRADLAB_SWEEP_PROGRESS_FILE"
SWEEP_TRACKING_URI_ENV = "GRADLAB_SWEEP_TRACKING_URI"
# On the sweep's parent run: the last progress line (sweeps.progress), updated by each job.
SWEEP_PROGRESS_TAG = "sweep_progress"
SWEEP_TAG = "sweep"
# On the sweep's parent run: `skipped.<config hash>` = the earlier run that stood in.
SKIPPED_TAG_PREFIX = "skipped."
# A job that is an Optuna trial.
OPTUNA_STUDY_TAG = "optuna_study"
OPTUNA_TRIAL_TAG = "optuna_trial"
TRIAL_STATE_TAG = "trial_state"
TRIAL_PRUNED = "pruned"
PRUNED_EPOCH_TAG = "pruned_epoch"
# On a search's parent run: the trials of the Pareto front (several objectives), and the
# best trial's statistics over its seeds (hydra.sweeper.seeds_per_trial > 1).
PARETO_FRONT_TAG = "pareto_front_trials"
BEST_SEEDS_METRICS = ("mean", "std", "interval_low", "interval_high", "n")
BEST_SEEDS_PREFIX = "best_seeds_"
# What a search writes into its sweep folder: its results, and Optuna's figures in a
# folder of that name (also the parent run's artifact folder), which the report reads.
SEARCH_RESULTS_FILE = "optimization_results.yaml"
SEARCH_FOLDER = "search"

# --- The transfer study ---
TRANSFER_STUDY_TAG = "transfer_study"
STUDY_PHASE_TAG = "study_phase"
MODEL_A_TAG = "model_A_run_id"
PHASE_METRIC = "reused_layers_trainable"

# --- Metrics ---
# What Keras computes every epoch; the test split's at the end.
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
TEST_METRICS = ("test_loss", "test_accuracy")
# The run's metrics at its last step that its Logged Model is linked to.
MODEL_METRICS = EPOCH_METRICS + TEST_METRICS
# The net's size, logged once: a search may minimize it (hydra.sweeper.objectives).
PARAM_COUNT_METRIC = "param_count"
# The metrics a configuration is compared on.
FINAL_METRICS = ("val_accuracy", "test_accuracy")
