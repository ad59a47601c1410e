-- +goose Up
-- Issue 12: the role the web service (services/web) reads with. NOLOGIN: an
-- operator creates the login and puts it in this role, so that the password
-- never sits in a migration:
--   CREATE ROLE sitewatch_web_login LOGIN PASSWORD '...' IN ROLE sitewatch_web;
-- A role belongs to the whole cluster, not to one database: it is created
-- only where it does not exist yet (several sitewatch databases on one
-- server, or an administrator who created it beforehand because the
-- migrating user may not create roles), and the grants below are per
-- database.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_web') THEN
        CREATE ROLE sitewatch_web NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA public TO sitewatch_web;
-- Tables and views alike; partitions are read through their parent.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO sitewatch_web;
-- Tables and views that later migrations create, as the user that runs the
-- migrations (the one running this one).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO sitewatch_web;

-- +goose Down
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM sitewatch_web;
REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM sitewatch_web;
REVOKE USAGE ON SCHEMA public FROM sitewatch_web;
-- The role stays: other databases of the cluster may still grant it.
