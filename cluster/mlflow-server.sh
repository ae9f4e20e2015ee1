#!/usr/bin/env bash
# An MLflow tracking server over a PostgreSQL backend store and a shared artifact store.
#
#   MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:PASSWORD@127.0.0.1:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=/shared/mlartifacts \
#   bash cluster/mlflow-server.sh
#
# MLFLOW_ARTIFACTS_DESTINATION: a directory every node mounts (NFS, EFS) or s3://BUCKET/PREFIX,
# gs://BUCKET/PREFIX (the server proxies artifacts: clients need no bucket credentials).
# MLFLOW_HOST (default 127.0.0.1: reach it through an SSH tunnel or on the head node; bind a
# private address only on a private network), MLFLOW_PORT (5000), MLFLOW_WORKERS (2).
# The first start creates MLflow's tables in the database. tests/search/test_cluster.py runs this
# script.
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg2://mlflow:PASSWORD@127.0.0.1:5432/mlflow}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-/shared/mlartifacts}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"

case "$artifacts" in
  *://*) ;;
  *) mkdir -p "$artifacts" ;;
esac

# No background job runner: the server starts in about 20 s instead of 50 (see STACK-NOTES).
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
exec "${PYTHON:-python3}" -m mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$artifacts" \
  --host "$host" \
  --port "$port" \
  --workers "$workers"
