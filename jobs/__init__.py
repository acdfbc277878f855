"""setlist's Spark jobs: one module per stage, each a `run(spark, cfg, ...)` that reads tables,
calls pure transforms from `udfs` and `models`, and writes tables. `jobs.main` dispatches them."""
