-- a labloop 0.1.0 database (schema made by create_all, before migrations), for upgrade tests
BEGIN TRANSACTION;
CREATE TABLE batch (
	id INTEGER NOT NULL, 
	number INTEGER NOT NULL, 
	state VARCHAR NOT NULL, 
	recipe_file VARCHAR, 
	model_version INTEGER, 
	closed_reason VARCHAR, 
	created_at DATETIME NOT NULL, 
	completed_at DATETIME, 
	trained_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (model_version)
);
INSERT INTO "batch" VALUES(1,1,'running','recipes/batch-001.csv',1,NULL,'2026-11-25 13:37:11.308570',NULL,NULL);
CREATE TABLE experiment (
	id INTEGER NOT NULL, 
	sample_id VARCHAR NOT NULL, 
	batch_id INTEGER, 
	origin VARCHAR NOT NULL, 
	parameters JSON, 
	predicted_mah_g FLOAT, 
	predicted_std_mah_g FLOAT, 
	p_success FLOAT, 
	model_version INTEGER, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(batch_id) REFERENCES batch (id)
);
INSERT INTO "experiment" VALUES(1,'B001-S01',1,'proposed','{"ni_fraction": 0.94, "li_source": "LiOH"}',224.1,1.1,0.97,1,'2026-11-25 13:37:11.310582');
INSERT INTO "experiment" VALUES(2,'H00001',NULL,'historical','{"ni_fraction": 0.92}',NULL,NULL,NULL,NULL,'2026-11-25 13:37:11.310702');
CREATE TABLE ingestedfile (
	id INTEGER NOT NULL, 
	sha256 VARCHAR NOT NULL, 
	original_name VARCHAR NOT NULL, 
	size_bytes INTEGER NOT NULL, 
	status VARCHAR NOT NULL, 
	stored_path VARCHAR, 
	cycler_format VARCHAR, 
	error VARCHAR, 
	results INTEGER NOT NULL, 
	lease_until DATETIME, 
	received_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "ingestedfile" VALUES(1,'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','B001-S01.csv',1234,'archived','archive/000001_B001-S01.csv','arbin-csv',NULL,1,NULL,'2026-11-25 13:37:11.312410',NULL);
INSERT INTO "ingestedfile" VALUES(2,'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc','junk.bin',10,'quarantined','quarantine/000002_junk.bin',NULL,'unsupported format: binary data (not text)',0,NULL,'2026-11-25 13:37:11.312489',NULL);
CREATE TABLE modelrun (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	trigger_batch INTEGER, 
	n_train INTEGER NOT NULL, 
	n_outcomes INTEGER NOT NULL, 
	counts JSON, 
	hyperparameters JSON, 
	comparison JSON, 
	cv_rmse FLOAT NOT NULL, 
	cv_r2 FLOAT NOT NULL, 
	timings JSON, 
	parity JSON, 
	model_path VARCHAR NOT NULL, 
	model_sha256 VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (trigger_batch)
);
INSERT INTO "modelrun" VALUES(1,1,NULL,582,611,'{"ok": 582}','{"max_depth": 3}','null',1.36,0.82,'{}','{}','models/model-v0001.joblib','dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd','2026-11-25 13:37:11.312555');
CREATE TABLE result (
	id INTEGER NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	outcome VARCHAR NOT NULL, 
	failure_class VARCHAR, 
	reason VARCHAR, 
	charge_mah_g FLOAT, 
	discharge_mah_g FLOAT, 
	coulombic_efficiency FLOAT, 
	active_mass_mg FLOAT, 
	mass_source VARCHAR, 
	cycler_format VARCHAR, 
	source_sha256 VARCHAR NOT NULL, 
	source_row INTEGER NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_result_source UNIQUE (source_sha256, source_row), 
	FOREIGN KEY(experiment_id) REFERENCES experiment (id)
);
INSERT INTO "result" VALUES(1,1,'ok',NULL,NULL,251.0,223.4,0.89,14.8,'sidecar','arbin-csv','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0,'2026-11-25 13:37:11.312227');
INSERT INTO "result" VALUES(2,2,'failed','synthesis','sintered',NULL,NULL,NULL,NULL,NULL,NULL,'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',2,'2026-11-25 13:37:11.312350');
CREATE INDEX ix_batch_state ON batch (state);
CREATE UNIQUE INDEX ix_batch_number ON batch (number);
CREATE INDEX ix_ingestedfile_sha256 ON ingestedfile (sha256);
CREATE UNIQUE INDEX uq_ingestedfile_archived_content ON ingestedfile (sha256) WHERE status = 'archived';
CREATE INDEX ix_ingestedfile_status ON ingestedfile (status);
CREATE UNIQUE INDEX uq_ingestedfile_processing_drop ON ingestedfile (original_name, sha256) WHERE status = 'processing';
CREATE UNIQUE INDEX ix_modelrun_version ON modelrun (version);
CREATE UNIQUE INDEX ix_experiment_sample_id ON experiment (sample_id);
CREATE INDEX ix_experiment_batch_id ON experiment (batch_id);
CREATE INDEX ix_result_source_sha256 ON result (source_sha256);
CREATE INDEX ix_result_experiment_id ON result (experiment_id);
COMMIT;
