-- tierkit release 0.1.0: the schema metadata.create_all emits (postgresql).
-- Captured with sqlalchemy.schema.CreateTable/CreateIndex before migrations existed;
-- tests/support/release_0_1_0.py builds an old database from it. Do not edit.
CREATE TABLE predictions (
	id BIGSERIAL NOT NULL, 
	request_id VARCHAR(160) NOT NULL, 
	record_index INTEGER NOT NULL, 
	batch_size INTEGER NOT NULL, 
	ts TIMESTAMP WITH TIME ZONE NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	version BIGINT, 
	arm VARCHAR(128), 
	strategy VARCHAR(64), 
	input TEXT, 
	output TEXT, 
	score FLOAT, 
	latency_ms FLOAT NOT NULL, 
	status INTEGER NOT NULL, 
	error VARCHAR(64), 
	label FLOAT, 
	reward FLOAT, 
	feedback_at TIMESTAMP WITH TIME ZONE, 
	feedback_updates INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_predictions_request UNIQUE (request_id, record_index)
);

CREATE INDEX ix_predictions_model_ts ON predictions (model, ts);

CREATE TABLE rollout_events (
	id SERIAL NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	at FLOAT NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	reason TEXT NOT NULL, 
	details JSON NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_rollout_events_model ON rollout_events (model);

CREATE TABLE rollout_leases (
	name VARCHAR(64) NOT NULL, 
	owner VARCHAR(128) NOT NULL, 
	until FLOAT NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE rollouts (
	model VARCHAR(128) NOT NULL, 
	spec JSON NOT NULL, 
	state JSON NOT NULL, 
	revision INTEGER NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (model)
);

