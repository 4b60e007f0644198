"""logic_service: the FastAPI logic tier, what product clients call.

Run it as ``python -m logic_service serve`` (or the ``tierkit-logic`` console
script); ``rollout``, ``api``, ``db``, ``dataset`` and ``init-secrets`` are its other
subcommands. A predict request reads top-down through the folders: ``api/``
(HTTP edge) -> ``prediction/`` -> ``routing/`` (which version) -> ``versions/``
(what can serve) -> ``inputs/`` (schema, features) and ``graph/`` (the call)
-> ``codecs/``; ``storage/`` keeps what replicas share. Layers, top to
bottom, each importing only those below it (``lint-imports``, pyproject.toml):

    __main__; cli/, server; app; api/; dashboard/; services;
    prediction/, pinning/, dataset/; routing/; versions/; inputs/, graph/, storage/;
    codecs/, observability/; manifest; settings/; errors, features/, scores

Every module, one line:

| module | what it holds |
| --- | --- |
| `__main__.py` | ``python -m logic_service``: serve, rollout, api, db, dataset, init-secrets |
| `server.py` | uvicorn with one or several workers; a worker's start failure is the exit code |
| `app.py` | ``create_app``: the parts built and started in the lifespan, every router included |
| `services.py` | ``Services``, the typed parts routers read; ``services_of(app)`` |
| `errors.py` | ``ApiError`` (status, code, message), raised at any depth; ``unknown_model`` |
| `manifest.py` | a version's manifest (``assets.extra/tierkit.json``) |
| `scores.py` | ``score_of``: the one score of an answered record (log, holdout, shadow) |
| `cli/rollout.py` | ``rollout``: status, set, promote, rollback, switch, versions, pin, unpin |
| `cli/api.py` | ``api``: status, retire, restore of request API versions |
| `cli/admin_client.py` | what both admin subcommands share: URL, token, one request, its refusal |
| `cli/db.py` | ``db``: upgrade, current, check; the same step ``serve`` takes first |
| `cli/dataset.py` | ``dataset export``: a training set as Parquet, a progress bar on stderr |
| `cli/pipe.py` | a client command's output piped into ``head``: ends quietly (exit 141) |
| `cli/init_secrets.py` | ``init-secrets``: the compose stack's database password and admin token |
| `api/predict.py` | predict of every request API, routed or pinned; OpenAPI per API |
| `api/model_openapi.py` | each served model's predict path in OpenAPI: schema, answer, example |
| `api/feedback.py` | ``POST /v1/feedback``: a label or reward joined to its prediction |
| `api/evaluation.py` | ``GET /v1/models/{name}/evaluation``: numbers per version and arm |
| `api/admin_rollouts.py` | ``/admin/rollouts``, ``/admin/models``; the admin token |
| `api/admin_apis.py` | ``/admin/apis``: which versions serve which API; retire, restore |
| `api/dashboard.py` | ``/dashboard``: the page, its JSON feed, its static files |
| `api/health.py` | ``/healthz``, ``/readyz``, ``/metrics`` |
| `api/json_body.py` | reading a JSON body (callers', admin calls'), writing a JSON answer |
| `api/body_limits.py` | nesting depth and string length of a parsed body |
| `api/errors.py` | the one JSON error body; ``field_problems`` for a 422 |
| `api/models.py` | request and response shapes for ``/docs`` |
| `api/middleware.py` | request id, ``Server-Timing``, the log line, metrics, the last-resort 500 |
| `api/security.py` | API keys, per-key rate limit, CORS |
| `dashboard/__init__.py` | ``STATIC_DIR``: the page, its script and style (``static/``, no CDN) |
| `dashboard/feed.py` | what the dashboard shows, from the shared database; the rollout gauges |
| `dashboard/graph_metrics.py` | the graph tier's own Prometheus counters per model, for the page |
| `dashboard/api_panel.py` | requests per API, version and route (the "API versions" panel) |
| `prediction/service.py` | one predict request: route, run, retry, follow up, log |
| `prediction/runner.py` | one chosen version on a body: validation, features, graph call, answer |
| `pinning/pins.py` | the ``version_pins`` table: an operator's pins, a pending ``rollout set``'s |
| `pinning/api_use.py` | the newest version of each live request API, kept loaded |
| `pinning/in_use.py` | which versions are in use, why (rollout role, label, pin, last servable) |
| `pinning/models_config.py` | models.config, version folders, the effective config (pure) |
| `pinning/plan.py` | the effective config from today's files and database |
| `pinning/keeper.py` | writes the effective config for the graph tier, one process at a time |
| `pinning/seed.py` | the effective file before the graph tier starts (``./scripts/up``) |
| `pinning/targets.py` | ``rollout set``: published? loaded? pin and wait, or a 4xx naming it |
| `pinning/missing.py` | versions a rollout names that cannot serve now |
| `pinning/admin.py` | what ``/admin/models/{model}/versions`` and ``.../pins`` do |
| `dataset/features.py` | a logged row's features, recomputed with its own version's pipeline |
| `dataset/export.py` | a time range of the log as Parquet, in chunks, published by a rename |
| `routing/version_policy.py` | the policy interface; ``StableOrNewest``; ``NoVersion`` |
| `routing/rollout_policy.py` | each model's rollout: route, refresh, evaluate canary and bandit |
| `routing/strategies.py` | which version of a rollout answers, and the rule when one cannot |
| `routing/traffic_split.py` | sticky hashed split: request key -> point -> arm |
| `routing/canary.py` | the staged canary as a pure state machine |
| `routing/bandit.py` | Thompson sampling over versions |
| `routing/blue_green.py` | moving the graph tier's labels on a blue-green switch |
| `routing/shadow.py` | shadow copies off the request path, compared with the primary |
| `routing/holdout.py` | which positive predictions the control version answers |
| `routing/followups.py` | after the primary answered: the holdout's control, the shadow copy |
| `routing/pinned.py` | a caller-pinned version or label, bypassing the rollout |
| `routing/api_versions.py` | ``ApiCatalog``: versions per request API, deprecation, retirement |
| `versions/model_state.py` | one model's versions: wanted, ready, published as ``RoutableModel`` |
| `versions/registry.py` | what each model can serve now; artifacts loaded in the background |
| `versions/discovery.py` | which models there are: models.config's and the repository's |
| `versions/artifacts.py` | what one version needs to serve, loaded once; its example run |
| `versions/routable.py` | ``RoutableModel``: the snapshot routing chooses from |
| `inputs/schema.py` | a version's ``input_schema`` compiled to validators |
| `inputs/feature_pipeline.py` | feature function and transformer (hash-checked, trusted types) |
| `inputs/feature_code.py` | the version's own feature code: trusted root, sha256, its own module |
| `inputs/compiled_transformer.py` | common sklearn transformers as numpy, checked against sklearn |
| `inputs/tensor_records.py` | records as tensors, for versions without feature processing |
| `graph/client.py` | the graph client interface and its errors |
| `graph/factory.py` | the protocol's client from the settings, maybe behind batching |
| `graph/grpc_client.py` | TF Serving's gRPC API |
| `graph/rest_client.py` | TF Serving's REST API |
| `graph/batching.py` | concurrent predicts of one version merged into one call |
| `codecs/serving_protos.py` | TF Serving's protos and stubs without importing TensorFlow |
| `codecs/dtypes.py` | TensorFlow dtype names and numpy dtypes |
| `codecs/tensor_proto.py` | numpy <-> ``TensorProto`` |
| `storage/database.py` | ``metadata``, ``open_database`` (schema at head), ``create_engine`` |
| `storage/database_url.py` | ``storage.database_url`` as written -> the URL SQLAlchemy opens |
| `storage/prediction_log.py` | the ``predictions`` table, a request as rows, their insert |
| `storage/writer/recorder.py` | ``PredictionRecorder``: the bounded queue and its writer thread |
| `storage/writer/outage.py` | a database behind or away: spilled, replayed, refused rows |
| `storage/writer/spill_file.py` | rows the database could not take yet, in local files, replayed |
| `storage/log_aggregates.py` | the log summed per 10 s and 1 min bucket, upserted as written |
| `storage/aggregate_backfill.py` | rows logged before the aggregates existed, summed in batches |
| `storage/aggregate_reads.py` | windows of the log read from its aggregates, grouped in SQL |
| `storage/evaluation.py` | numbers per version (errors, latency, accuracy, AUC...) from the log |
| `storage/feedback_store.py` | a record's outcome stored, its label statistics moved with it |
| `storage/payloads.py` | ``storage.payloads``: how much of each request the log keeps |
| `storage/retention.py` | old rows and aggregates deleted in batches, one replica at a time |
| `storage/retention_process.py` | a retention pass in a niced child process, off the workers' GIL |
| `storage/rollout_state.py` | rollouts, their events and the evaluator's lease |
| `storage/retired_apis.py` | retired API versions and the traffic check before retiring |
| `storage/migrations/__init__.py` | the migrations package; Alembic's plugin chatter kept quiet |
| `storage/migrations/runner.py` | upgrade (adopt, then to head, locked), current, require_head |
| `storage/migrations/lock.py` | one migrator at a time (advisory lock, ``flock``) |
| `storage/migrations/adoption.py` | a release-0.1.0 database verified and stamped at 0001 |
| `storage/migrations/baseline_schema.py` | release 0.1.0's tables, frozen |
| `storage/migrations/env.py` | Alembic's environment, on the connection the runner hands over |
| `storage/migrations/versions/0001_baseline.py` | revision 0001: release 0.1.0's tables |
| `storage/migrations/versions/0002_version_pins.py` | revision 0002: ``version_pins`` |
| `storage/migrations/versions/0003_api_versions.py` | revision 0003: API versions |
| `storage/migrations/versions/0004_log_aggregates.py` | revision 0004: the log's aggregates |
| `observability/logs.py` | log files rotated at UTC midnight; the request id on each line |
| `observability/metrics.py` | Prometheus metrics, summed across workers |
| `observability/request_context.py` | one request's id, stage timings, model, version, arm |
| `settings/__init__.py` | ``LogicSettings``: logic.yaml, ``TIERKIT_*`` variables, defaults |
| `settings/rollout.py` | the ``rollout`` section: strategies, guardrails, shadow, holdout |
| `settings/api_versions.py` | the ``api_versions`` section: deprecation, sunset, successor |
| `settings/storage.py` | the ``storage`` section: database, log writer, spill, retention |
| `settings/strict.py` | ``Strict``: every section refuses keys it does not know |
| `features/ctr.py` | the demo model's feature function (``logic_service.features.<model>``) |
"""
