"""Airflow DAG example: the setlist nightly for each logical date, retried, alerting on failure.

Copy into the Airflow dags folder and set SETLIST_HOME (the checkout on the worker) and the
config. The task's exit code is submit.sh's: 0 success; 2 bad config (retrying will not help);
3 missing input (often the logs arrive late: retries wait for them); 4 the warehouse is busy
(another run holds its lease); 5 the publish gate refused the night's lists; 6 the day's data
quality is past a fail threshold; 143 stopped (execution_timeout or a manual stop: the SIGTERM
reaches the Spark application, nothing of the run goes on); 1 other failures. A re-run of a failed
or stopped date resumes at the failed stage (stages already committed are skipped).
"""
from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

SETLIST_HOME = os.environ.get("SETLIST_HOME", "/opt/setlist")
SETLIST_CONF = os.environ.get("SETLIST_CONF", "conf/cluster.yaml")


def alert_on_failure(context) -> None:
    """Replace with the team's pager or chat hook; Airflow also sends email_on_failure."""
    ti = context["task_instance"]
    print(f"ALERT setlist nightly failed for {context['ds']}: {ti.task_id}, try {ti.try_number}, log {ti.log_url}")


with DAG(
    dag_id="setlist_nightly",
    description="Ingest, clean, embed, cluster, ALS, LSTM, recommend and evaluate for one day of logs",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # nights build on each other (ids, sessions across midnight, cadences)
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=20),
        "email": ["data-oncall@example.com"],
        "email_on_failure": True,
        "on_failure_callback": alert_on_failure,
        "execution_timeout": timedelta(hours=6),
    },
    tags=["setlist", "spark"],
) as dag:
    BashOperator(
        task_id="nightly",
        # {{ ds }} is the run's logical date: the day whose logs are processed.
        bash_command=f"cd {SETLIST_HOME} && ./submit.sh nightly --conf {SETLIST_CONF} --date {{{{ ds }}}}",
    )
