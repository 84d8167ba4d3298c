-- River's GIN indexes on river_job's args and metadata take an entry for
-- every key and value of every row version: each job is written three
-- times (inserted, fetched, finalized), and no fetch, insert or completion
-- reads them. Only a search by args or metadata would (River UI's, River's
-- JobList by metadata), on a table River keeps small (finalized jobs are
-- deleted after a day), so such a search reads it whole instead. The
-- service's one look by args, a session's reauth_notify jobs, gets a btree
-- of its own: river_job_reauth_notify, for every state now.
-- River's reindexer is told (worker.ClientConfig) not to look for them.
DROP INDEX IF EXISTS river_job_args_index;
DROP INDEX IF EXISTS river_job_metadata_index;
DROP INDEX river_job_reauth_notify;
CREATE INDEX river_job_reauth_notify ON river_job ((args ->> 'session_id')) WHERE kind = 'reauth_notify';
