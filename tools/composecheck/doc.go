// Command composecheck validates compose.yaml where no Docker engine runs
// (`task lint`):
//
//   - against the Compose Specification's JSON schema, as compose-go ships it
//     (schema/compose-spec.json);
//   - by loading it with compose-go's loader, every profile active, as
//     `docker compose` does (interpolation, normalisation, consistency:
//     depends_on, networks, volumes);
//   - against sitewatch's own rules, each one a defect that stopped or
//     degraded `task up` in a container:
//     the postgres healthcheck asks over TCP (pg_isready -h 127.0.0.1);
//     the prober runs in file mode (-config) or fleet mode (-fleet with
//     -region and a fixed -instance, after a one-shot service that runs
//     `prober targets apply FILE` once Kafka and the registry are healthy,
//     restart "no", and completes successfully: a fleet prober refuses to
//     start before the targets topic exists);
//     the targets file (-config's, or the one applied) is mounted as a
//     directory (reload after a rename-save, and no stale inode);
//     the prober's and the recorder's stop_grace_period exceed their own
//     shutdown time (their flags, read from the command, and the longest
//     timeout of the targets file);
//     grafana, where present, runs only under the profile grafana, from an
//     image of a full version, with its provisioning mounted read-only from
//     files that exist, published on 127.0.0.1 only;
//     each Dockerfile builds with a golang image pinned to a full version at
//     or above the go directive of go.work and of every workspace module.
//
// Usage:
//
//	go run ./tools/composecheck [-f compose.yaml]
//
// It prints one line per defect, naming the file, the service and the field,
// and exits 1 when there is any.
package main
